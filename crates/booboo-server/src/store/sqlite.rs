//! The SQLite store: the embedded default. WAL journal so that reads never
//! wait for the writer, `synchronous=FULL` so that a committed batch survives
//! a power cut, and one writer (the ingest queue) doing group commits.

use super::batch_counters::BatchCounters;
use super::migrations::{self, Backend};
use super::rows::*;
use super::search_sql::{issue_list_query, Dialect};
use super::*;
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::Connection;
use sqlx::{Row, Sqlite, SqlitePool, Transaction};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub struct SqliteStore {
    pool: SqlitePool,
    /// A file beside the database that `check_writable` writes and removes;
    /// `None` for an in-memory database.
    space_probe: Option<PathBuf>,
    installation_quota: quota::InstallationQuota,
    payload_codec: stored_payload::PayloadCodec,
}

/// Bytes `check_writable` must be able to write beside the database.
const SPACE_PROBE_BYTES: usize = 1 << 20;

row_readers!(SqliteRow);
super::quota_sql::quota_queries!(sqlx::SqliteConnection);
super::search_sql::search_runner!(SqlitePool, SqliteRow, plain_text, &super::search_sql::SQLITE, VISIBLE_ORG);
super::alert_sql::alert_queries!(sqlx::SqliteConnection, SqliteRow);
super::retention_sql::retention_queries!(sqlx::SqliteConnection);

/// SQLite's write lock already serialises retention with ingest.
const LOCK_ISSUES: &str = "";

/// Free pages returned to the file system per `incremental_vacuum` step: a
/// short hold of the write lock each.
const VACUUM_STEP_PAGES: i64 = 256;
super::key_sql::key_queries!(sqlx::SqliteConnection);
super::stored_payload::payload_dictionary_queries!(SqlitePool);
super::batch_counters::batch_counter_queries!(sqlx::SqliteConnection, plain_text, "MIN", "MAX");
super::project_limits_sql::project_limits_queries!(sqlx::SqliteConnection);
// One writer at a time: a merge needs no row locks.
super::merge_sql::merge_queries!(sqlx::SqliteConnection, "");
super::resolve_sql::resolve_queries!(sqlx::SqliteConnection);
super::activity_sql::activity_queries!(sqlx::SqliteConnection, SqliteRow);

/// The alert queries' placeholders are SQLite's own.
fn q(sql: &str) -> String {
    sql.to_string()
}

/// SQLite takes text binds as they are.
fn plain_text(text: &str) -> String {
    text.to_string()
}

/// SQLite has one writer at a time; a claim needs no row locks.
const SKIP_LOCKED: &str = "";

const DIALECT: Dialect = Dialect { placeholder: |n| format!("?{n}"), search: &super::search_sql::SQLITE };

/// The access rule every read shares: administrators see everything, other
/// users the organisations they are members of. Binds: is_admin, user_id.
const VISIBLE_ORG: &str = "(?1 OR p.org_id IN (SELECT org_id FROM memberships WHERE user_id = ?2))";

impl SqliteStore {
    /// Runs `sql`, a DELETE of at most `DELETE_PAGE` rows (binds: `owner`,
    /// then the page size), until it deletes nothing: each page is a
    /// transaction of its own, so a large deletion never holds the writer long.
    async fn delete_in_pages(&self, sql: &str, owner: i64, doing: &str) -> StoreResult<()> {
        loop {
            let deleted = sqlx::query(sql)
                .bind(owner)
                .bind(DELETE_PAGE)
                .execute(&self.pool)
                .await
                .map_err(unavailable(doing))?
                .rows_affected();
            if deleted == 0 {
                return Ok(());
            }
        }
    }

    /// `Forbidden` unless the viewer administers the organisation (or the
    /// installation).
    async fn require_org_admin(&self, viewer: Viewer, org_id: i64, doing: &str) -> StoreResult<()> {
        if viewer.is_admin {
            return Ok(());
        }
        let role: Option<String> = sqlx::query_scalar("SELECT role FROM memberships WHERE org_id = ? AND user_id = ?")
            .bind(org_id)
            .bind(viewer.user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable("looking up a role"))?;
        if role.as_deref() == Some("admin") {
            Ok(())
        } else {
            Err(StoreError::Forbidden(format!("only an admin of the organisation may {doing}")))
        }
    }

    /// Sets an issue's status; for `ignored`, when its ignore ends (a time,
    /// or this many more events or users than it has now). Any change
    /// replaces the previous condition, and fires nothing: a manual reopen
    /// is not an ignore condition ending.
    async fn change_issue_status(
        &self,
        viewer: Viewer,
        issue_id: i64,
        status: IssueStatus,
        ignore: Option<IgnoreCondition>,
        resolved: Option<&ResolvedIn>,
        at: i64,
    ) -> StoreResult<Option<Issue>> {
        let (until, more_events, more_users) = ignore.map(|c| c.targets(at)).unwrap_or_default();
        let mut tx = self.begin_write().await?;
        let prior: Option<String> = sqlx::query_scalar("SELECT status FROM issues WHERE id = ?1")
            .bind(issue_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable("reading an issue's status"))?;
        let row = sqlx::query(&format!(
            "UPDATE issues SET status = ?4, is_regression = CASE WHEN ?4 = 'ignored' THEN is_regression ELSE 0 END, \
             ignore_until = ?5, ignore_until_count = event_count + ?6, ignore_until_users = user_count + ?7, \
             resolved_kind = ?8, resolved_release = ?9, resolved_semver = ?10 \
             WHERE id = ?3 AND project_id IN (SELECT p.id FROM projects p WHERE {VISIBLE_ORG}) RETURNING {}",
            ISSUE_COLUMNS.replace("i.", "")
        ))
        .bind(viewer.is_admin)
        .bind(viewer.user_id)
        .bind(issue_id)
        .bind(status.as_str())
        .bind(until)
        .bind(more_events)
        .bind(more_users)
        .bind(resolved.map(|r| r.kind.as_str()))
        .bind(resolved.and_then(|r| r.release.as_deref()))
        .bind(resolved.is_some_and(|r| r.semver))
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable("changing an issue's status"))?;
        let Some(row) = row else { return Ok(None) };
        let mut issues = vec![issue_from_row(&row).map_err(unavailable("reading an issue"))?];
        // Setting the status it has is no change, unless a new ignore
        // condition replaces the old one.
        if prior.as_deref() != Some(status.as_str()) || ignore.is_some() || resolved.is_some() {
            let mut detail = activity::status_detail(
                status,
                resolved.and_then(|r| r.release.as_deref()),
                ignore.map(|c| activity::ignore_detail(c, at)),
            );
            if let Some(resolved) = resolved {
                detail["resolved_in"] = serde_json::json!(resolved.kind.as_str());
            }
            insert_activity(&mut tx, issue_id, Some(viewer.user_id), ActivityKind::Status, &detail, at)
                .await
                .map_err(unavailable("recording a status change"))?;
        }
        tx.commit().await.map_err(unavailable("committing a status change"))?;
        self.fill_environments_and_releases(&mut issues).await?;
        Ok(issues.pop())
    }

    /// Fills `environments` and `releases` of a page of issues with two
    /// queries rather than two per issue.
    async fn fill_environments_and_releases(&self, issues: &mut [Issue]) -> StoreResult<()> {
        if issues.is_empty() {
            return Ok(());
        }
        let ids = id_list(issues);
        for (table, column) in [("issue_environments", "environment"), ("issue_releases", "release")] {
            let rows: Vec<(i64, String)> = sqlx::query_as(&format!(
                "SELECT issue_id, {column} FROM {table} WHERE issue_id IN ({ids}) ORDER BY event_count DESC, {column}"
            ))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable("reading environments and releases"))?;
            attach_names(issues, rows, column == "environment");
        }
        Ok(())
    }

    /// Whether the viewer may see a project: the access rule of every read.
    async fn project_visible(&self, viewer: Viewer, project_id: i64) -> StoreResult<bool> {
        sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM projects p WHERE {VISIBLE_ORG} AND p.id = ?3)"))
            .bind(viewer.is_admin)
            .bind(viewer.user_id)
            .bind(project_id)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable("checking access to a project"))
    }

    pub async fn open(url: &str) -> StoreResult<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Incompatible(format!("invalid SQLite URL {url:?}: {e}")))?
            .create_if_missing(true)
            // Takes effect on a new database only (an existing one keeps its
            // mode until a VACUUM): retention then returns freed pages to
            // the file system a step at a time (docs/operations.md).
            .auto_vacuum(SqliteAutoVacuum::Incremental)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let space_probe = options
            .get_filename()
            .parent()
            .filter(|dir| dir.is_dir())
            .map(|_| PathBuf::from(format!("{}-space-probe", options.get_filename().display())));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .after_release(|conn, _| {
                Box::pin(async move {
                    // A transaction whose end failed leaves sqlx's count of
                    // open transactions out of step with SQLite's (on
                    // SQLITE_FULL SQLite rolls back by itself, so the pool's
                    // ROLLBACK fails too); reused, such a connection would
                    // turn the next transaction into a savepoint that never
                    // commits, or hold the write lock for ever. Let a queued
                    // rollback run, and close the connection unless it is
                    // cleanly out of any transaction.
                    if !conn.is_in_transaction() {
                        return Ok(true);
                    }
                    conn.ping().await?;
                    Ok(!conn.is_in_transaction())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database {url:?}: {e}")))?;
        let store = SqliteStore {
            pool,
            space_probe,
            installation_quota: Default::default(),
            payload_codec: Default::default(),
        };
        store.migrate().await?;
        // Bodies compressed with a dictionary read back from the first request.
        let dictionaries = store.payload_dictionaries().await?;
        store.payload_codec.install(&dictionaries, crate::clock::now_millis());
        // Without statistics the planner guesses, and picks the project's
        // whole event index for searches a narrower one answers. 0x10002:
        // look at every table, not only those this connection used; the
        // limit keeps the analysis to a moment on a large database.
        sqlx::raw_sql("PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002;")
            .execute(&store.pool)
            .await
            .map_err(unavailable("gathering planner statistics"))?;
        Ok(store)
    }

    /// Starts a write transaction through the pool. `BEGIN IMMEDIATE` takes
    /// the write lock at once, so a transaction that reads before it writes
    /// (is there a user yet? does the organisation exist?) cannot be raced,
    /// and never fails midway upgrading a read lock.
    async fn begin_write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(unavailable("starting a write transaction"))
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .execute(&mut *conn)
        .await
        .map_err(unavailable("creating the migrations table"))?;
        let applied: Vec<String> = sqlx::query_scalar("SELECT name FROM schema_migrations ORDER BY name")
            .fetch_all(&mut *conn)
            .await
            .map_err(unavailable("reading applied migrations"))?;
        for migration in migrations::pending(Backend::Sqlite, &applied).map_err(StoreError::Incompatible)? {
            let mut tx = self.begin_write().await?;
            sqlx::raw_sql(migration.sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::Incompatible(format!("migration {} failed: {e}", migration.name)))?;
            sqlx::query("INSERT INTO schema_migrations (name, applied_at) VALUES (?, strftime('%s','now') * 1000)")
                .bind(migration.name)
                .execute(&mut *tx)
                .await
                .map_err(unavailable("recording a migration"))?;
            tx.commit().await.map_err(unavailable("committing a migration"))?;
            tracing::info!(migration = migration.name, "applied migration");
        }
        Ok(())
    }
}

/// Opens a SQLite file read-only and runs `PRAGMA integrity_check`; `Ok`
/// only for an intact booboo database whose migrations this binary knows.
pub async fn check_database_file(path: &std::path::Path) -> StoreResult<()> {
    let shown = path.display();
    let options = SqliteConnectOptions::new().filename(path).read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| StoreError::Incompatible(format!("{shown} is not a SQLite database booboo can open: {e}")))?;
    let verdict: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .map_err(|e| StoreError::Incompatible(format!("{shown} is not a SQLite database: {e}")))?;
    if verdict != ["ok"] {
        return Err(StoreError::Incompatible(format!(
            "{shown} is damaged: {}",
            verdict.into_iter().take(3).collect::<Vec<_>>().join("; ")
        )));
    }
    let applied: Vec<String> = sqlx::query_scalar("SELECT name FROM schema_migrations ORDER BY name")
        .fetch_all(&mut conn)
        .await
        .map_err(|_| StoreError::Incompatible(format!("{shown} is a SQLite database, but not one of booboo's")))?;
    migrations::pending(Backend::Sqlite, &applied).map_err(|e| StoreError::Incompatible(format!("{shown}: {e}")))?;
    let _ = conn.close().await;
    Ok(())
}

/// Creates a project in an organisation with its first key: the end that
/// both ways of creating a project share. The caller commits.
async fn insert_project(
    conn: &mut sqlx::SqliteConnection,
    org_id: i64,
    org_slug: &str,
    project_slug: &str,
    token: &str,
    at: i64,
) -> StoreResult<(Project, ProjectKey)> {
    let project_id: i64 =
        sqlx::query_scalar("INSERT INTO projects (org_id, slug, name, created_at) VALUES (?, ?, ?, ?) RETURNING id")
            .bind(org_id)
            .bind(project_slug)
            .bind(project_slug)
            .bind(at)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("project {org_slug}/{project_slug} already exists"))
                } else {
                    StoreError::Unavailable(format!("creating a project: {e}"))
                }
            })?;
    let key_row = sqlx::query(
        "INSERT INTO project_keys (project_id, token, label, created_at) VALUES (?, ?, 'default', ?) \
         RETURNING id, project_id, token, label, created_at, revoked_at",
    )
    .bind(project_id)
    .bind(token)
    .bind(at)
    .fetch_one(&mut *conn)
    .await
    .map_err(unavailable("creating a project key"))?;
    let key = key_from_row(&key_row).map_err(unavailable("reading a project key"))?;
    let project_row = sqlx::query(&format!(
        "SELECT {PROJECT_COLUMNS} FROM projects p JOIN organisations o ON o.id = p.org_id WHERE p.id = ?"
    ))
    .bind(project_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(unavailable("reading a project"))?;
    let project = project_from_row(&project_row).map_err(unavailable("reading a project"))?;
    Ok((project, key))
}

/// Stores one event inside the batch's transaction.
async fn store_one(
    tx: &mut Transaction<'_, Sqlite>,
    e: &NewEvent,
    rules: &[AlertRule],
    quotas: &mut BatchQuotas,
    counters: &mut BatchCounters,
) -> Result<StoreOutcome, sqlx::Error> {
    let event = &e.processed.event;
    // Over its quota an event is counted like any other; only its payload
    // (the events row) is not stored.
    let not_stored = quotas.charge(e.project_id, e.received_at).err();
    if not_stored.is_some() && event_already_stored(tx, e.project_id, &event.event_id).await? {
        return Ok(StoreOutcome::Duplicate);
    }
    let inserted: Option<i64> = if not_stored.is_some() {
        None
    } else {
        sqlx::query_scalar(
        "INSERT INTO events (project_id, event_id, received_at, occurred_at, environment, release, level, user_key, payload, \
         body, tags, user_email) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, event_id) DO NOTHING RETURNING id",
    )
    .bind(e.project_id)
    .bind(&event.event_id)
    .bind(e.received_at)
    .bind(e.occurred_at)
    .bind(&event.environment)
    .bind(&event.release)
    .bind(event.level.as_str())
    .bind(&e.processed.user_key)
    .bind(if e.body.is_some() { "" } else { e.payload.as_str() })
    .bind(e.body.as_deref())
    .bind(&e.tags)
    .bind(&e.user_email)
    .fetch_optional(&mut **tx)
    .await?
    };
    if inserted.is_none() && not_stored.is_none() {
        quotas.refund(e.project_id);
        return Ok(StoreOutcome::Duplicate);
    }

    // Alert rules need to know whether the issue was resolved before this
    // event; the write lock is held, so nothing changes in between.
    // A fingerprint merged into another issue is counted on that issue.
    let mut fingerprint = merged_fingerprint(tx, e.project_id, &e.processed.fingerprint.fingerprint)
        .await?
        .unwrap_or_else(|| e.processed.fingerprint.fingerprint.clone());
    // A resolution bound to releases is left for the rule below to judge;
    // any other resolved issue is unresolved again by its next event.
    let (
        prior_status,
        (issue_id, event_count, ignored_until_counts, status, resolved_kind, resolved_release, resolved_semver),
    ) = loop {
        let prior_status: Option<String> =
            sqlx::query_scalar("SELECT status FROM issues WHERE project_id = ? AND fingerprint = ?")
                .bind(e.project_id)
                .bind(&fingerprint)
                .fetch_optional(&mut **tx)
                .await?;
        #[allow(clippy::type_complexity)]
        let row: (i64, i64, bool, String, Option<String>, Option<String>, bool) = sqlx::query_as(
            "INSERT INTO issues (project_id, fingerprint, title, culprit, level, status, first_seen, last_seen, event_count, first_release) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'unresolved', ?6, ?6, 1, NULLIF(?7, '')) \
             ON CONFLICT (project_id, fingerprint) DO UPDATE SET \
               title = excluded.title, culprit = excluded.culprit, level = excluded.level, \
               first_seen = MIN(first_seen, excluded.first_seen), last_seen = MAX(last_seen, excluded.last_seen), \
               event_count = event_count + 1, \
               first_release = COALESCE(first_release, excluded.first_release), \
               is_regression = CASE WHEN status = 'resolved' AND resolved_kind IS NULL THEN 1 ELSE is_regression END, \
               status = CASE WHEN status = 'resolved' AND resolved_kind IS NULL THEN 'unresolved' ELSE status END \
             RETURNING id, event_count, (ignore_until_count IS NOT NULL OR ignore_until_users IS NOT NULL), \
               status, resolved_kind, resolved_release, resolved_semver",
        )
        .bind(e.project_id)
        .bind(&fingerprint)
        .bind(&e.processed.title)
        .bind(&e.processed.culprit)
        .bind(event.level.as_str())
        .bind(e.received_at)
        .bind(&event.release)
    .fetch_one(&mut **tx)
        .await?;
        if row.1 == 1 {
            if let Some(target) = merged_meanwhile(tx, e.project_id, &fingerprint, row.0).await? {
                fingerprint = target;
                continue;
            }
        }
        break (prior_status, row);
    };

    match inserted {
        Some(row_id) => {
            sqlx::query("UPDATE events SET issue_id = ? WHERE id = ?")
                .bind(issue_id)
                .bind(row_id)
                .execute(&mut **tx)
                .await?;
        }
        None => count_not_stored(tx, issue_id).await?,
    }
    let release_bound = match resolved_kind.as_deref().and_then(ResolvedInKind::parse) {
        Some(kind) if status == "resolved" => {
            Some(ResolvedIn { kind, release: resolved_release, semver: resolved_semver })
        }
        _ => None,
    };
    let regressed_by_release = match &release_bound {
        Some(resolved) => regress_by_release(tx, e.project_id, issue_id, resolved, &event.release).await?,
        None => false,
    };
    // Regressed: reopened by this event, plainly or by its release.
    let regressed = regressed_by_release || (prior_status.as_deref() == Some("resolved") && status != "resolved");
    if regressed {
        let release = Some(event.release.as_str()).filter(|r| !r.is_empty());
        let detail = serde_json::json!({ "event_id": event.event_id, "release": release });
        insert_activity(tx, issue_id, None, ActivityKind::Regression, &detail, e.received_at).await?;
    }
    // An issue's first event and the event of each regression are kept by
    // retention whatever the limits.
    // (A rate-limited event has no payload row to keep.)
    if let (Some(row_id), true) = (inserted, event_count == 1 || regressed) {
        sqlx::query("UPDATE events SET kept = ? WHERE id = ?").bind(true).bind(row_id).execute(&mut **tx).await?;
    }
    if !rules.is_empty() {
        let facts = IssueFacts { created: event_count == 1, regressed };
        fire_alert_rules(tx, rules, e, issue_id, &facts).await?;
    }

    if let Some(user_key) = &e.processed.user_key {
        let new_user = sqlx::query("INSERT INTO issue_users (issue_id, user_key) VALUES (?, ?) ON CONFLICT DO NOTHING")
            .bind(issue_id)
            .bind(user_key)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if new_user > 0 {
            sqlx::query("UPDATE issues SET user_count = user_count + 1 WHERE id = ?")
                .bind(issue_id)
                .execute(&mut **tx)
                .await?;
        }
    }
    if ignored_until_counts {
        end_ignore_on_counts(tx, issue_id, &event.event_id, e.received_at).await?;
    }
    counters.count(e.project_id, issue_id, event, e.received_at);
    Ok(match not_stored {
        None => StoreOutcome::Stored { issue_id },
        Some(reason) => StoreOutcome::NotStored { issue_id, reason },
    })
}

/// Reads a sign-in counter, creating it if new, inside the caller's
/// transaction (which holds the write lock).
async fn lock_counter(tx: &mut Transaction<'_, Sqlite>, key: &str) -> StoreResult<sign_in_limits::Counter> {
    let row = sqlx::query(
        "INSERT INTO sign_in_limits (key, window_ends_at, checks, next_check_at) VALUES (?, 0, 0, 0) \
         ON CONFLICT (key) DO UPDATE SET key = excluded.key RETURNING window_ends_at, checks, next_check_at",
    )
    .bind(key)
    .fetch_one(&mut **tx)
    .await
    .map_err(unavailable("reading a sign-in count"))?;
    counter_from_row(&row).map_err(unavailable("reading a sign-in count"))
}

#[async_trait]
impl Maintenance for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn refresh_planner_statistics(&self) -> StoreResult<()> {
        // 0x10002 as at start: plain `optimize` looks only at tables this
        // connection has queried, and a pool connection may have queried none.
        sqlx::raw_sql("PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002;")
            .execute(&self.pool)
            .await
            .map_err(unavailable("refreshing planner statistics"))?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(unavailable("pinging"))?;
        Ok(())
    }

    async fn check_writable(&self) -> StoreResult<()> {
        // A small write into the database can succeed while a batch cannot
        // (the WAL file reuses its space), so ask the file system for room.
        let Some(path) = self.space_probe.clone() else { return Ok(()) };
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let written = std::fs::File::create(&path).and_then(|mut file| {
                file.write_all(&vec![0u8; SPACE_PROBE_BYTES])?;
                file.sync_all()
            });
            let _ = std::fs::remove_file(&path);
            written.map_err(|e| {
                let what = format!("writing {} bytes beside the database: {e}", SPACE_PROBE_BYTES);
                if e.raw_os_error() == Some(28) {
                    StoreError::DiskFull(what)
                } else {
                    StoreError::Unavailable(what)
                }
            })
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("checking free space: {e}")))?
    }

    async fn backup_to(&self, dest: &std::path::Path) -> StoreResult<()> {
        // VACUUM INTO reads one snapshot (every transaction committed before
        // it began, none after) and writes a compact new database; the live
        // database is only read. It is written under a temporary name and
        // renamed once complete and checked, so `dest` is whole or absent.
        let partial = PathBuf::from(format!("{}.partial", dest.display()));
        let _ = std::fs::remove_file(&partial);
        let result = async {
            sqlx::query("VACUUM INTO ?")
                .bind(partial.to_string_lossy().into_owned())
                .execute(&self.pool)
                .await
                .map_err(unavailable("copying the database"))?;
            check_database_file(&partial).await?;
            std::fs::rename(&partial, dest).map_err(|e| {
                StoreError::Unavailable(format!("renaming the finished backup to {}: {e}", dest.display()))
            })
        }
        .await;
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result
    }

    async fn used_bytes(&self) -> StoreResult<u64> {
        let bytes: i64 = sqlx::query_scalar(super::retention_sql::SQLITE_USED_BYTES)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable("measuring the database"))?;
        Ok(bytes.max(0) as u64)
    }

    async fn reclaim_space(&self, keep_bytes: u64) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        let (mode, page_size): (i64, i64) =
            sqlx::query_as("SELECT av.auto_vacuum, ps.page_size FROM pragma_auto_vacuum() av, pragma_page_size() ps")
                .fetch_one(&mut *conn)
                .await
                .map_err(unavailable("reading the vacuum mode"))?;
        // 2 is INCREMENTAL; a database created before it was the default
        // reuses its free pages but never returns them (one VACUUM switches it).
        if mode != 2 {
            return Ok(());
        }
        let keep_pages = keep_bytes as i64 / page_size.max(1);
        for _ in 0..64 {
            let free: i64 = sqlx::query_scalar("SELECT freelist_count FROM pragma_freelist_count()")
                .fetch_one(&mut *conn)
                .await
                .map_err(unavailable("counting free pages"))?;
            if free <= keep_pages {
                break;
            }
            let step = (free - keep_pages).min(VACUUM_STEP_PAGES);
            sqlx::query(&format!("PRAGMA incremental_vacuum({step})"))
                .execute(&mut *conn)
                .await
                .map_err(unavailable("returning free pages"))?;
        }
        Ok(())
    }
}

#[async_trait]
impl PayloadDictionaries for SqliteStore {
    fn payload_codec(&self) -> &stored_payload::PayloadCodec {
        &self.payload_codec
    }

    async fn payload_dictionaries(&self) -> StoreResult<Vec<stored_payload::PayloadDictionary>> {
        payload_dictionaries_in(&self.pool).await
    }

    async fn add_payload_dictionary(&self, dictionary: &stored_payload::PayloadDictionary) -> StoreResult<()> {
        add_payload_dictionary_in(&self.pool, dictionary).await
    }

    async fn payload_samples(&self, limit: i64, max_bytes: usize) -> StoreResult<Vec<String>> {
        payload_samples_in(&self.pool, limit, max_bytes).await
    }
}

#[async_trait]
impl Ingest for SqliteStore {
    async fn ingest_target(&self, token: &str) -> StoreResult<Option<IngestTarget>> {
        let project_id: Option<i64> =
            sqlx::query_scalar("SELECT project_id FROM project_keys WHERE token = ? AND revoked_at IS NULL")
                .bind(token)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable("looking up an ingestion token"))?;
        Ok(project_id.map(|project_id| IngestTarget { project_id }))
    }

    async fn record_handshake(&self, project_id: i64, sdk: &str, at: i64) -> StoreResult<()> {
        sqlx::query("UPDATE projects SET connected_at = ?, connected_sdk = ? WHERE id = ?")
            .bind(at)
            .bind(sdk)
            .bind(project_id)
            .execute(&self.pool)
            .await
            .map_err(unavailable("recording a handshake"))?;
        Ok(())
    }

    async fn store_events(&self, batch: &[NewEvent]) -> StoreResult<Vec<StoreOutcome>> {
        let mut tx = self.begin_write().await?;
        let rules = rules_for_batch(&mut tx, batch).await.map_err(unavailable("reading alert rules"))?;
        let mut quotas = quotas_for_batch(&mut tx, batch, self.installation_quota.get())
            .await
            .map_err(unavailable("reading the projects' quotas"))?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut counters = BatchCounters::default();
        for event in batch {
            let rules = rules.get(&event.project_id).map(Vec::as_slice).unwrap_or_default();
            outcomes.push(
                store_one(&mut tx, event, rules, &mut quotas, &mut counters)
                    .await
                    .map_err(unavailable("storing an event"))?,
            );
        }
        write_batch_counters(&mut tx, &counters).await.map_err(unavailable("counting a batch's events"))?;
        save_quotas(&mut tx, &quotas).await.map_err(unavailable("saving the projects' quotas"))?;
        tx.commit().await.map_err(unavailable("committing a batch"))?;
        Ok(outcomes)
    }

    fn set_installation_rate_limit(&self, limit: Option<RateLimit>) {
        self.installation_quota.set(limit);
    }
}

#[async_trait]
impl Accounts for SqliteStore {
    async fn create_user(&self, email: &str, password_hash: &str, is_admin: bool, at: i64) -> StoreResult<User> {
        let row = sqlx::query(
            "INSERT INTO users (email, password_hash, is_admin, created_at) VALUES (?, ?, ?, ?) \
             RETURNING id, email, password_hash, is_admin",
        )
        .bind(email)
        .bind(password_hash)
        .bind(is_admin)
        .bind(at)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("a user with the email {email} already exists"))
            } else {
                StoreError::Unavailable(format!("creating a user: {e}"))
            }
        })?;
        user_from_row(&row).map_err(unavailable("reading a user"))
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        sqlx::query("SELECT id, email, password_hash, is_admin FROM users WHERE email = ?")
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable("looking up a user"))?
            .map(|r| user_from_row(&r))
            .transpose()
            .map_err(unavailable("reading a user"))
    }

    async fn user_count(&self) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable("counting users"))
    }

    async fn create_api_token(&self, user_id: i64, token_hash: &str, label: &str, at: i64) -> StoreResult<()> {
        sqlx::query("INSERT INTO api_tokens (user_id, token_hash, label, created_at) VALUES (?, ?, ?, ?)")
            .bind(user_id)
            .bind(token_hash)
            .bind(label)
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(unavailable("creating an API token"))?;
        Ok(())
    }

    async fn user_for_api_token(&self, token_hash: &str) -> StoreResult<Option<User>> {
        sqlx::query(
            "SELECT u.id, u.email, u.password_hash, u.is_admin FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = ? AND t.revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable("looking up an API token"))?
        .map(|r| user_from_row(&r))
        .transpose()
        .map_err(unavailable("reading a user"))
    }

    async fn add_setup_token(&self, token_hash: &str, at: i64, expires_at: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO setup_tokens (token_hash, created_at, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(token_hash)
        .bind(at)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(unavailable("remembering a setup link"))?;
        Ok(())
    }

    async fn setup_token_valid(&self, token_hash: &str, now: i64) -> StoreResult<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM setup_tokens WHERE token_hash = ? AND expires_at > ?) \
             AND NOT EXISTS (SELECT 1 FROM users)",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable("checking a setup link"))
    }

    async fn create_first_admin(
        &self,
        setup_token_hash: &str,
        email: &str,
        password_hash: &str,
        at: i64,
    ) -> StoreResult<User> {
        // The write lock is taken first, so two browsers using the link at
        // once cannot both see "no user yet".
        let mut tx = self.begin_write().await?;
        let conn = &mut *tx;
        let user = async {
            let known: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM setup_tokens WHERE token_hash = ? AND expires_at > ?)",
            )
            .bind(setup_token_hash)
            .bind(at)
            .fetch_one(&mut *conn)
            .await
            .map_err(unavailable("checking a setup link"))?;
            let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
                .fetch_one(&mut *conn)
                .await
                .map_err(unavailable("counting users"))?;
            if users > 0 {
                return Err(StoreError::Conflict(
                    "an administrator already exists; sign in, or ask them for an account".into(),
                ));
            }
            if !known {
                return Err(StoreError::NotFound(
                    "this setup link is not valid or has expired; restart `booboo serve` for a new one".into(),
                ));
            }
            let row = sqlx::query(
                "INSERT INTO users (email, password_hash, is_admin, created_at) VALUES (?, ?, 1, ?) \
                 RETURNING id, email, password_hash, is_admin",
            )
            .bind(email)
            .bind(password_hash)
            .bind(at)
            .fetch_one(&mut *conn)
            .await
            .map_err(unavailable("creating the administrator"))?;
            sqlx::query("DELETE FROM setup_tokens")
                .execute(&mut *conn)
                .await
                .map_err(unavailable("forgetting setup links"))?;
            user_from_row(&row).map_err(unavailable("reading a user"))
        }
        .await?;
        tx.commit().await.map_err(unavailable("committing"))?;
        Ok(user)
    }

    async fn create_session(&self, token_hash: &str, user_id: i64, session: &Session) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(&session.csrf_token)
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&self.pool)
        .await
        .map_err(unavailable("starting a session"))?;
        Ok(())
    }

    async fn session(&self, token_hash: &str, now: i64) -> StoreResult<Option<(User, Session)>> {
        let row = sqlx::query(
            "SELECT u.id, u.email, u.password_hash, u.is_admin, s.csrf_token, s.created_at, s.expires_at \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND s.expires_at > ?",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable("looking up a session"))?;
        let Some(row) = row else { return Ok(None) };
        let read = || -> Result<(User, Session), sqlx::Error> {
            let user = user_from_row(&row)?;
            let session = Session {
                user_id: user.id,
                csrf_token: row.try_get("csrf_token")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
            };
            Ok((user, session))
        };
        read().map(Some).map_err(unavailable("reading a session"))
    }

    async fn end_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(unavailable("ending a session"))?;
        Ok(())
    }

    async fn set_password(&self, user_id: i64, password_hash: &str, keep_session_hash: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(password_hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable("changing a password"))?;
        sqlx::query("DELETE FROM sessions WHERE user_id = ? AND token_hash <> ?")
            .bind(user_id)
            .bind(keep_session_hash)
            .execute(&mut *tx)
            .await
            .map_err(unavailable("ending other sessions"))?;
        sqlx::query("DELETE FROM password_links WHERE user_id = ? AND used_at IS NULL")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable("voiding password links"))?;
        tx.commit().await.map_err(unavailable("committing a password change"))
    }

    async fn reserve_sign_in(
        &self,
        address_key: &str,
        account_key: &str,
        limits: &SignInLimits,
        now: i64,
    ) -> StoreResult<SignInReservation> {
        // BEGIN IMMEDIATE takes the write lock before the counters are read,
        // so the read, the decision and the write happen as one step.
        let mut tx = self.begin_write().await?;
        let address = lock_counter(&mut tx, address_key).await?;
        let account = lock_counter(&mut tx, account_key).await?;
        let (address, account) = match sign_in_limits::reserve(address, account, limits, now) {
            Ok(counters) => counters,
            // Nothing was changed; dropping the transaction rolls it back.
            Err(refused) => return Ok(refused),
        };
        for (key, counter) in [(address_key, address), (account_key, account)] {
            sqlx::query("UPDATE sign_in_limits SET window_ends_at = ?, checks = ?, next_check_at = ? WHERE key = ?")
                .bind(counter.window_ends_at)
                .bind(counter.checks)
                .bind(counter.next_check_at)
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(unavailable("counting a sign-in"))?;
        }
        tx.commit().await.map_err(unavailable("committing a sign-in count"))?;
        Ok(SignInReservation::Granted)
    }

    async fn sign_in_succeeded(&self, address_key: &str, account_key: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE sign_in_limits SET checks = MAX(checks - 1, 0) WHERE key = ?")
            .bind(address_key)
            .execute(&mut *tx)
            .await
            .map_err(unavailable("giving a sign-in check back"))?;
        sqlx::query("DELETE FROM sign_in_limits WHERE key = ?")
            .bind(account_key)
            .execute(&mut *tx)
            .await
            .map_err(unavailable("clearing an account's sign-in count"))?;
        tx.commit().await.map_err(unavailable("committing a sign-in"))
    }

    async fn create_password_link(&self, token_hash: &str, user_id: i64, at: i64, expires_at: i64) -> StoreResult<()> {
        sqlx::query("INSERT INTO password_links (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
            .bind(token_hash)
            .bind(user_id)
            .bind(at)
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .map_err(unavailable("creating a password link"))?;
        Ok(())
    }

    async fn password_link(&self, token_hash: &str, now: i64) -> StoreResult<Option<User>> {
        sqlx::query(
            "SELECT u.id, u.email, u.password_hash, u.is_admin FROM password_links l JOIN users u ON u.id = l.user_id \
             WHERE l.token_hash = ? AND l.used_at IS NULL AND l.expires_at > ?",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable("looking up a password link"))?
        .map(|r| user_from_row(&r))
        .transpose()
        .map_err(unavailable("reading a user"))
    }

    async fn use_password_link(&self, token_hash: &str, password_hash: &str, now: i64) -> StoreResult<User> {
        let mut tx = self.begin_write().await?;
        // Marking it used first makes a second, concurrent use find nothing.
        let user_id: i64 = sqlx::query_scalar(
            "UPDATE password_links SET used_at = ?1 WHERE token_hash = ?2 AND used_at IS NULL AND expires_at > ?1 \
             RETURNING user_id",
        )
        .bind(now)
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable("using a password link"))?
        .ok_or_else(|| StoreError::NotFound(PASSWORD_LINK_GONE.into()))?;
        let row =
            sqlx::query("UPDATE users SET password_hash = ? WHERE id = ? RETURNING id, email, password_hash, is_admin")
                .bind(password_hash)
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable("setting a password"))?;
        for (sql, doing) in [
            ("DELETE FROM sessions WHERE user_id = ?", "ending sessions"),
            ("DELETE FROM password_links WHERE user_id = ? AND used_at IS NULL", "voiding password links"),
        ] {
            sqlx::query(sql).bind(user_id).execute(&mut *tx).await.map_err(unavailable(doing))?;
        }
        let user = user_from_row(&row).map_err(unavailable("reading a user"))?;
        tx.commit().await.map_err(unavailable("committing a new password"))?;
        Ok(user)
    }

    async fn prune_expired(&self, now: i64) -> StoreResult<Pruned> {
        // Rows deleted: sessions, links, sign-in counters.
        let mut counts = [0u64; 3];
        for (sql, kind) in [
            ("DELETE FROM sessions WHERE expires_at <= ?1", 0),
            ("DELETE FROM setup_tokens WHERE expires_at <= ?1", 1),
            ("DELETE FROM password_links WHERE expires_at <= ?1", 1),
            ("DELETE FROM invitations WHERE expires_at <= ?1", 1),
            ("DELETE FROM sign_in_limits WHERE window_ends_at <= ?1 AND next_check_at <= ?1", 2),
        ] {
            counts[kind] += sqlx::query(sql)
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(unavailable("deleting expired sessions and links"))?
                .rows_affected();
        }
        Ok(Pruned { sessions: counts[0], links: counts[1], sign_in_limits: counts[2] })
    }

    async fn api_tokens_of(&self, user_id: i64) -> StoreResult<Vec<ApiTokenInfo>> {
        sqlx::query("SELECT id, label, created_at, revoked_at FROM api_tokens WHERE user_id = ? ORDER BY id")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable("listing API tokens"))?
            .iter()
            .map(|r| {
                Ok(ApiTokenInfo {
                    id: r.try_get("id")?,
                    label: r.try_get("label")?,
                    created_at: r.try_get("created_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(unavailable("reading API tokens"))
    }

    async fn revoke_api_token(&self, user_id: i64, token_id: i64, at: i64) -> StoreResult<bool> {
        let changed =
            sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL")
                .bind(at)
                .bind(token_id)
                .bind(user_id)
                .execute(&self.pool)
                .await
                .map_err(unavailable("revoking an API token"))?
                .rows_affected();
        Ok(changed > 0)
    }
}

#[async_trait]
impl Organisations for SqliteStore {
    async fn set_membership(&self, org_slug: &str, user_id: i64, role: Role) -> StoreResult<()> {
        let org_id: Option<i64> = sqlx::query_scalar("SELECT id FROM organisations WHERE slug = ?")
            .bind(org_slug)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable("looking up an organisation"))?;
        let org_id = org_id.ok_or_else(|| StoreError::NotFound(format!("no organisation named {org_slug}")))?;
        sqlx::query(
            "INSERT INTO memberships (org_id, user_id, role) VALUES (?, ?, ?) \
             ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(role.as_str())
        .execute(&self.pool)
        .await
        .map_err(unavailable("adding a member"))?;
        Ok(())
    }

    async fn organisations_for(&self, viewer: Viewer) -> StoreResult<Vec<OrgAccess>> {
        let rows = sqlx::query(
            "SELECT o.slug, CASE WHEN ?1 THEN 'admin' ELSE m.role END AS role FROM organisations o \
             LEFT JOIN memberships m ON m.org_id = o.id AND m.user_id = ?2 \
             WHERE ?1 OR m.user_id IS NOT NULL ORDER BY o.slug",
        )
        .bind(viewer.is_admin)
        .bind(viewer.user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable("listing organisations"))?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get("role")?;
                Ok(OrgAccess { org_slug: r.try_get("slug")?, role: Role::parse(&role).unwrap_or(Role::Member) })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(unavailable("reading organisations"))
    }

    async fn role_in(&self, viewer: Viewer, org_slug: &str) -> StoreResult<Option<Role>> {
        let role: Option<Option<String>> = sqlx::query_scalar(
            "SELECT CASE WHEN ?1 THEN 'admin' ELSE m.role END FROM organisations o \
             LEFT JOIN memberships m ON m.org_id = o.id AND m.user_id = ?2 WHERE o.slug = ?3",
        )
        .bind(viewer.is_admin)
        .bind(viewer.user_id)
        .bind(org_slug)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable("looking up a role"))?;
        Ok(role.flatten().and_then(|r| Role::parse(&r)))
    }

    async fn members_of(&self, viewer: Viewer, org_slug: &str) -> StoreResult<Option<Vec<Member>>> {
        if self.role_in(viewer, org_slug).await?.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT u.id, u.email, m.role FROM memberships m JOIN users u ON u.id = m.user_id \
             JOIN organisations o ON o.id = m.org_id WHERE o.slug = ? ORDER BY u.email",
        )
        .bind(org_slug)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable("listing members"))?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get("role")?;
                Ok(Member {
                    user_id: r.try_get("id")?,
                    email: r.try_get("email")?,
                    role: Role::parse(&role).unwrap_or(Role::Member),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map(Some)
            .map_err(unavailable("reading members"))
    }

    async fn remove_membership(&self, org_slug: &str, user_id: i64) -> StoreResult<bool> {
        let removed = sqlx::query(
            "DELETE FROM memberships WHERE user_id = ? AND org_id = (SELECT id FROM organisations WHERE slug = ?)",
        )
        .bind(user_id)
        .bind(org_slug)
        .execute(&self.pool)
        .await
        .map_err(unavailable("removing a member"))?
        .rows_affected();
        Ok(removed > 0)
    }

    async fn create_invitation(&self, token_hash: &str, invitation: &Invitation, at: i64) -> StoreResult<()> {
        let inserted = sqlx::query(
            "INSERT INTO invitations (token_hash, org_id, email, role, created_at, expires_at) \
             SELECT ?, id, ?, ?, ?, ? FROM organisations WHERE slug = ?",
        )
        .bind(token_hash)
        .bind(&invitation.email)
        .bind(invitation.role.as_str())
        .bind(at)
        .bind(invitation.expires_at)
        .bind(&invitation.org_slug)
        .execute(&self.pool)
        .await
        .map_err(unavailable("creating an invitation"))?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::NotFound(format!("no organisation named {}", invitation.org_slug)));
        }
        Ok(())
    }

    async fn invitation(&self, token_hash: &str, now: i64) -> StoreResult<Option<Invitation>> {
        let row = sqlx::query(
            "SELECT o.slug, i.email, i.role, i.expires_at FROM invitations i JOIN organisations o ON o.id = i.org_id \
             WHERE i.token_hash = ? AND i.accepted_at IS NULL AND i.expires_at > ?",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable("looking up an invitation"))?;
        let Some(row) = row else { return Ok(None) };
        let read = || -> Result<Invitation, sqlx::Error> {
            let role: String = row.try_get("role")?;
            Ok(Invitation {
                org_slug: row.try_get("slug")?,
                email: row.try_get("email")?,
                role: Role::parse(&role).unwrap_or(Role::Member),
                expires_at: row.try_get("expires_at")?,
            })
        };
        read().map(Some).map_err(unavailable("reading an invitation"))
    }

    async fn accept_invitation(&self, token_hash: &str, password_hash: &str, now: i64) -> StoreResult<(User, bool)> {
        let mut tx = self.begin_write().await?;
        // Marking it used first makes a second, concurrent use find nothing.
        let row = sqlx::query(
            "UPDATE invitations SET accepted_at = ?1 WHERE token_hash = ?2 AND accepted_at IS NULL AND expires_at > ?1 \
             RETURNING org_id, email, role",
        )
        .bind(now)
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable("using an invitation"))?
        .ok_or_else(|| {
            StoreError::NotFound("this invitation is unknown, used or expired; ask for a new one".into())
        })?;
        let org_id: i64 = row.try_get("org_id").map_err(unavailable("reading an invitation"))?;
        let email: String = row.try_get("email").map_err(unavailable("reading an invitation"))?;
        let role: String = row.try_get("role").map_err(unavailable("reading an invitation"))?;
        let created = sqlx::query(
            "INSERT INTO users (email, password_hash, is_admin, created_at) VALUES (?, ?, 0, ?) \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(&email)
        .bind(password_hash)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(unavailable("creating an invited user"))?
        .rows_affected()
            > 0;
        let user_row = sqlx::query("SELECT id, email, password_hash, is_admin FROM users WHERE email = ?")
            .bind(&email)
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable("reading an invited user"))?;
        let user = user_from_row(&user_row).map_err(unavailable("reading a user"))?;
        sqlx::query(
            "INSERT INTO memberships (org_id, user_id, role) VALUES (?, ?, ?) \
             ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(org_id)
        .bind(user.id)
        .bind(&role)
        .execute(&mut *tx)
        .await
        .map_err(unavailable("adding an invited member"))?;
        tx.commit().await.map_err(unavailable("committing an invitation"))?;
        Ok((user, created))
    }

    async fn pending_invitations(
        &self,
        viewer: Viewer,
        org_slug: &str,
        now: i64,
    ) -> StoreResult<Option<Vec<PendingInvitation>>> {
        match self.role_in(viewer, org_slug).await? {
            None => return Ok(None),
            Some(Role::Member) => {
                return Err(StoreError::Forbidden("only an admin of the organisation may see its invitations".into()))
            }
            Some(Role::Admin) => {}
        }
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        pending_invitation_rows(&mut conn, org_slug, now).await.map(Some).map_err(unavailable("listing invitations"))
    }

    async fn revoke_invitation(&self, viewer: Viewer, org_slug: &str, email: &str) -> StoreResult<bool> {
        if self.role_in(viewer, org_slug).await? != Some(Role::Admin) {
            return Err(StoreError::Forbidden("only an admin of the organisation may revoke its invitations".into()));
        }
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        let revoked =
            revoke_invitation_rows(&mut conn, org_slug, email).await.map_err(unavailable("revoking an invitation"))?;
        Ok(revoked > 0)
    }
}

#[async_trait]
impl Projects for SqliteStore {
    async fn create_project(
        &self,
        org_slug: &str,
        project_slug: &str,
        token: &str,
        at: i64,
    ) -> StoreResult<(Project, ProjectKey)> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO organisations (slug, name, created_at) VALUES (?, ?, ?) ON CONFLICT (slug) DO NOTHING",
        )
        .bind(org_slug)
        .bind(org_slug)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(unavailable("creating an organisation"))?;
        let org_id: i64 = sqlx::query_scalar("SELECT id FROM organisations WHERE slug = ?")
            .bind(org_slug)
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable("looking up an organisation"))?;
        let created = insert_project(&mut tx, org_id, org_slug, project_slug, token, at).await?;
        tx.commit().await.map_err(unavailable("committing a project"))?;
        Ok(created)
    }

    async fn project_with_keys(
        &self,
        org_slug: &str,
        project_slug: &str,
    ) -> StoreResult<Option<(Project, Vec<ProjectKey>)>> {
        let row = sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects p JOIN organisations o ON o.id = p.org_id WHERE o.slug = ? AND p.slug = ?"
        ))
        .bind(org_slug)
        .bind(project_slug)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable("looking up a project"))?;
        let Some(row) = row else { return Ok(None) };
        let project = project_from_row(&row).map_err(unavailable("reading a project"))?;
        let keys = sqlx::query(
            "SELECT id, project_id, token, label, created_at, revoked_at FROM project_keys \
             WHERE project_id = ? AND revoked_at IS NULL ORDER BY id",
        )
        .bind(project.id)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable("reading project keys"))?
        .iter()
        .map(key_from_row)
        .collect::<Result<Vec<_>, _>>()
        .map_err(unavailable("reading project keys"))?;
        Ok(Some((project, keys)))
    }

    async fn projects_for(&self, viewer: Viewer) -> StoreResult<Vec<Project>> {
        sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects p JOIN organisations o ON o.id = p.org_id \
             WHERE {VISIBLE_ORG} ORDER BY o.slug, p.slug"
        ))
        .bind(viewer.is_admin)
        .bind(viewer.user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable("listing projects"))?
        .iter()
        .map(project_from_row)
        .collect::<Result<_, _>>()
        .map_err(unavailable("reading projects"))
    }

    async fn project_for(&self, viewer: Viewer, org_slug: &str, project_slug: &str) -> StoreResult<Option<Project>> {
        sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects p JOIN organisations o ON o.id = p.org_id \
             WHERE {VISIBLE_ORG} AND o.slug = ?3 AND p.slug = ?4"
        ))
        .bind(viewer.is_admin)
        .bind(viewer.user_id)
        .bind(org_slug)
        .bind(project_slug)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable("looking up a project"))?
        .map(|r| project_from_row(&r))
        .transpose()
        .map_err(unavailable("reading a project"))
    }

    async fn create_project_for(
        &self,
        viewer: Viewer,
        org_slug: &str,
        project_slug: &str,
        token: &str,
        at: i64,
    ) -> StoreResult<(Project, ProjectKey)> {
        // The organisation and its first admin are decided inside one write
        // lock, so two people creating the same new organisation at once do
        // not both become its admin.
        let mut tx = self.begin_write().await?;
        let conn = &mut *tx;
        let created = async {
            let org_id: Option<i64> = sqlx::query_scalar("SELECT id FROM organisations WHERE slug = ?")
                .bind(org_slug)
                .fetch_optional(&mut *conn)
                .await
                .map_err(unavailable("looking up an organisation"))?;
            let org_id = match org_id {
                Some(id) => {
                    let role: Option<String> =
                        sqlx::query_scalar("SELECT role FROM memberships WHERE org_id = ? AND user_id = ?")
                            .bind(id)
                            .bind(viewer.user_id)
                            .fetch_optional(&mut *conn)
                            .await
                            .map_err(unavailable("looking up a role"))?;
                    if !viewer.is_admin && role.as_deref() != Some("admin") {
                        return Err(StoreError::Forbidden(format!(
                            "only an admin of the organisation {org_slug} can create projects in it"
                        )));
                    }
                    id
                }
                None => {
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO organisations (slug, name, created_at) VALUES (?, ?, ?) RETURNING id",
                    )
                    .bind(org_slug)
                    .bind(org_slug)
                    .bind(at)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(unavailable("creating an organisation"))?;
                    sqlx::query("INSERT INTO memberships (org_id, user_id, role) VALUES (?, ?, 'admin')")
                        .bind(id)
                        .bind(viewer.user_id)
                        .execute(&mut *conn)
                        .await
                        .map_err(unavailable("making the creator an admin"))?;
                    id
                }
            };
            insert_project(&mut *conn, org_id, org_slug, project_slug, token, at).await
        }
        .await?;
        tx.commit().await.map_err(unavailable("committing"))?;
        Ok(created)
    }

    async fn project_keys(&self, viewer: Viewer, project_id: i64) -> StoreResult<Option<Vec<ProjectKey>>> {
        if !self.project_visible(viewer, project_id).await? {
            return Ok(None);
        }
        sqlx::query(
            "SELECT id, project_id, token, label, created_at, revoked_at FROM project_keys WHERE project_id = ? ORDER BY id",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable("reading project keys"))?
        .iter()
        .map(key_from_row)
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
        .map_err(unavailable("reading project keys"))
    }

    async fn add_project_key(
        &self,
        viewer: Viewer,
        project_id: i64,
        token: &str,
        label: &str,
        at: i64,
    ) -> StoreResult<Option<ProjectKey>> {
        if !self.project_visible(viewer, project_id).await? {
            return Ok(None);
        }
        let row = sqlx::query(
            "INSERT INTO project_keys (project_id, token, label, created_at) VALUES (?, ?, ?, ?) \
             RETURNING id, project_id, token, label, created_at, revoked_at",
        )
        .bind(project_id)
        .bind(token)
        .bind(label)
        .bind(at)
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable("creating a project key"))?;
        key_from_row(&row).map(Some).map_err(unavailable("reading a project key"))
    }

    async fn revoke_project_key(&self, viewer: Viewer, project_id: i64, key_id: i64, at: i64) -> StoreResult<bool> {
        if !self.project_visible(viewer, project_id).await? {
            return Ok(false);
        }
        let changed = sqlx::query(
            "UPDATE project_keys SET revoked_at = ? WHERE id = ? AND project_id = ? AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(key_id)
        .bind(project_id)
        .execute(&self.pool)
        .await
        .map_err(unavailable("revoking a project key"))?
        .rows_affected();
        Ok(changed > 0)
    }

    async fn project_limits_all(&self) -> StoreResult<Vec<(i64, ProjectLimits)>> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        all_limit_rows(&mut conn).await.map_err(unavailable("reading project limits"))
    }

    async fn set_project_limits(
        &self,
        viewer: Viewer,
        project_id: i64,
        patch: &ProjectLimitsPatch,
    ) -> StoreResult<Option<ProjectLimits>> {
        if let Err((field, message)) = patch.check() {
            return Err(StoreError::Conflict(format!("{field}: {message}")));
        }
        let org_id: Option<i64> =
            sqlx::query_scalar(&format!("SELECT p.org_id FROM projects p WHERE {VISIBLE_ORG} AND p.id = ?3"))
                .bind(viewer.is_admin)
                .bind(viewer.user_id)
                .bind(project_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable("looking up a project"))?;
        let Some(org_id) = org_id else { return Ok(None) };
        self.require_org_admin(viewer, org_id, "change a project's limits").await?;
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        // Deleted between the look-up and the change: as good as unseen.
        set_limit_row(&mut conn, project_id, patch).await.map_err(unavailable("changing a project's limits"))
    }

    async fn delete_project_key(&self, viewer: Viewer, project_id: i64, key_id: i64) -> StoreResult<bool> {
        if !self.project_visible(viewer, project_id).await? {
            return Ok(false);
        }
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        delete_key_row(&mut conn, project_id, key_id).await.map_err(unavailable("deleting a project key"))
    }
}

#[async_trait]
impl IssueReads for SqliteStore {
    async fn list_issues(
        &self,
        viewer: Viewer,
        project_id: i64,
        filter: &IssueFilter,
        page: Page,
    ) -> StoreResult<PageOf<Issue>> {
        let (sql, binds) = issue_list_query(&DIALECT, VISIBLE_ORG, filter, page);
        let mut query = sqlx::query(&sql).bind(viewer.is_admin).bind(viewer.user_id).bind(project_id);
        for bind in binds {
            query = match bind {
                Bind::Int(i) => query.bind(i),
                Bind::Text(t) => query.bind(t),
            };
        }
        let rows = query.fetch_all(&self.pool).await.map_err(unavailable("listing issues"))?;
        let issues =
            rows.iter().map(issue_from_row).collect::<Result<Vec<_>, _>>().map_err(unavailable("reading issues"))?;
        let mut page = PageOf::from_overfetch(issues, page);
        self.fill_environments_and_releases(&mut page.items).await?;
        Ok(page)
    }

    async fn issue_detail(&self, viewer: Viewer, issue_id: i64) -> StoreResult<Option<IssueDetail>> {
        let row = sqlx::query(&format!(
            "SELECT {ISSUE_COLUMNS} FROM issues i JOIN projects p ON p.id = i.project_id WHERE {VISIBLE_ORG} AND i.id = ?3"
        ))
        .bind(viewer.is_admin)
        .bind(viewer.user_id)
        .bind(issue_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable("looking up an issue"))?;
        let Some(row) = row else { return Ok(None) };
        let mut issue = issue_from_row(&row).map_err(unavailable("reading an issue"))?;
        let counts = |sql: &'static str| {
            let pool = self.pool.clone();
            async move {
                sqlx::query(sql)
                    .bind(issue_id)
                    .fetch_all(&pool)
                    .await
                    .map_err(unavailable("reading issue counts"))?
                    .iter()
                    .map(|r| Ok(ValueCount { value: r.try_get(0)?, count: r.try_get(1)? }))
                    .collect::<Result<Vec<_>, sqlx::Error>>()
                    .map_err(unavailable("reading issue counts"))
            }
        };
        let environments = counts(
            "SELECT environment, event_count FROM issue_environments WHERE issue_id = ? ORDER BY event_count DESC, environment",
        )
        .await?;
        let releases =
            counts("SELECT release, event_count FROM issue_releases WHERE issue_id = ? ORDER BY first_seen, release")
                .await?;
        let tag_rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT key, value, event_count FROM issue_tags WHERE issue_id = ? ORDER BY key, event_count DESC, value",
        )
        .bind(issue_id)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable("reading issue tags"))?;
        let tags = group_tags(tag_rows);
        issue.environments = environments.iter().map(|c| c.value.clone()).collect();
        issue.releases = releases.iter().map(|c| c.value.clone()).collect();
        Ok(Some(IssueDetail { issue, environment_counts: environments, release_counts: releases, tags }))
    }

    async fn issue_events(
        &self,
        viewer: Viewer,
        issue_id: i64,
        page: Page,
    ) -> StoreResult<Option<PageOf<StoredEvent>>> {
        if self.issue_detail(viewer, issue_id).await?.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT event_id, issue_id, project_id, received_at, payload, body FROM events \
             WHERE issue_id = ? ORDER BY received_at DESC, id DESC LIMIT ? OFFSET ?",
        )
        .bind(issue_id)
        .bind(page.limit + 1)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable("listing events"))?;
        let events =
            rows.iter().map(event_from_row).collect::<Result<Vec<_>, _>>().map_err(unavailable("reading events"))?;
        Ok(Some(PageOf::from_overfetch(events, page)))
    }

    async fn event(&self, viewer: Viewer, event_id: &str) -> StoreResult<Option<StoredEvent>> {
        sqlx::query(&format!(
            "SELECT e.event_id, e.issue_id, e.project_id, e.received_at, e.payload, e.body FROM events e \
             JOIN projects p ON p.id = e.project_id \
             WHERE {VISIBLE_ORG} AND e.event_id = ?3 AND e.issue_id IS NOT NULL ORDER BY e.received_at DESC LIMIT 1"
        ))
        .bind(viewer.is_admin)
        .bind(viewer.user_id)
        .bind(event_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable("looking up an event"))?
        .map(|r| event_from_row(&r))
        .transpose()
        .map_err(unavailable("reading an event"))
    }

    async fn issue_hourly(
        &self,
        viewer: Viewer,
        project_id: i64,
        issue_ids: &[i64],
        since_hour: i64,
    ) -> StoreResult<Vec<HourCount>> {
        if issue_ids.is_empty() || !self.project_visible(viewer, project_id).await? {
            return Ok(Vec::new());
        }
        // The ids are integers, so formatting them in is safe.
        let ids = issue_ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        sqlx::query(&format!(
            "SELECT h.issue_id, h.hour, h.event_count FROM issue_hourly h JOIN issues i ON i.id = h.issue_id \
             WHERE i.project_id = ? AND h.issue_id IN ({ids}) AND h.hour >= ? ORDER BY h.issue_id, h.hour"
        ))
        .bind(project_id)
        .bind(since_hour)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable("reading hourly counts"))?
        .iter()
        .map(|r| Ok(HourCount { issue_id: r.try_get(0)?, hour: r.try_get(1)?, count: r.try_get(2)? }))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(unavailable("reading hourly counts"))
    }

    async fn project_facets(&self, viewer: Viewer, project_id: i64) -> StoreResult<ProjectFacets> {
        if !self.project_visible(viewer, project_id).await? {
            return Ok(ProjectFacets::default());
        }
        let environments: Vec<String> = sqlx::query_scalar(
            "SELECT environment FROM project_environments WHERE project_id = ? ORDER BY environment",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable("listing environments"))?;
        let releases: Vec<String> = sqlx::query_scalar(
            "SELECT release FROM project_releases WHERE project_id = ? ORDER BY first_seen DESC, release LIMIT 200",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable("listing releases"))?;
        Ok(ProjectFacets { environments, releases })
    }

    async fn issue_event(
        &self,
        viewer: Viewer,
        issue_id: i64,
        event_id: Option<&str>,
    ) -> StoreResult<Option<EventInIssue>> {
        let visible: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM issues i JOIN projects p ON p.id = i.project_id WHERE {VISIBLE_ORG} AND i.id = ?3)"
        ))
        .bind(viewer.is_admin)
        .bind(viewer.user_id)
        .bind(issue_id)
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable("looking up an issue"))?;
        if !visible {
            return Ok(None);
        }
        const COLUMNS: &str = "id, event_id, issue_id, project_id, received_at, payload, body";
        let row = match event_id {
            Some(event_id) => {
                sqlx::query(&format!("SELECT {COLUMNS} FROM events WHERE issue_id = ? AND event_id = ?"))
                    .bind(issue_id)
                    .bind(event_id)
                    .fetch_optional(&self.pool)
                    .await
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM events WHERE issue_id = ? ORDER BY received_at DESC, id DESC LIMIT 1"
                ))
                .bind(issue_id)
                .fetch_optional(&self.pool)
                .await
            }
        }
        .map_err(unavailable("looking up an event"))?;
        let Some(row) = row else { return Ok(None) };
        let event = event_from_row(&row).map_err(unavailable("reading an event"))?;
        let row_id: i64 = row.try_get("id").map_err(unavailable("reading an event"))?;
        let neighbour = |sql: &'static str| {
            let pool = self.pool.clone();
            let received_at = event.received_at;
            async move {
                sqlx::query_scalar::<_, String>(sql)
                    .bind(issue_id)
                    .bind(received_at)
                    .bind(row_id)
                    .fetch_optional(&pool)
                    .await
                    .map_err(unavailable("looking up neighbouring events"))
            }
        };
        let older = neighbour(
            "SELECT event_id FROM events WHERE issue_id = ?1 AND (received_at < ?2 OR (received_at = ?2 AND id < ?3)) \
             ORDER BY received_at DESC, id DESC LIMIT 1",
        )
        .await?;
        let newer = neighbour(
            "SELECT event_id FROM events WHERE issue_id = ?1 AND (received_at > ?2 OR (received_at = ?2 AND id > ?3)) \
             ORDER BY received_at, id LIMIT 1",
        )
        .await?;
        Ok(Some(EventInIssue { event, older, newer }))
    }

    async fn merged_issue_target(&self, viewer: Viewer, issue_id: i64) -> StoreResult<Option<i64>> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        merged_issue_target(&mut conn, viewer, issue_id).await.map_err(unavailable("looking up a merged issue"))
    }

    async fn search_issues(
        &self,
        viewer: Viewer,
        project_id: i64,
        search: &IssueSearch,
        page: Page,
        since_hour: i64,
    ) -> StoreResult<SearchResults> {
        let (mut hits, total, counts, mut hourly, more) =
            search_issues_with(&self.pool, viewer, project_id, search, page, since_hour).await?;
        let mut issues: Vec<Issue> = hits.iter().map(|h| h.issue.clone()).collect();
        self.fill_environments_and_releases(&mut issues).await?;
        for (hit, issue) in hits.iter_mut().zip(issues) {
            hit.issue = issue;
        }
        if counts == CountSource::AllEvents {
            let ids: Vec<i64> = hits.iter().map(|h| h.issue.id).collect();
            hourly = self.issue_hourly(viewer, project_id, &ids, since_hour).await?;
        }
        Ok(SearchResults {
            hits: PageOf { items: hits, next_offset: more.then_some(page.offset + page.limit) },
            total,
            counts,
            hourly,
        })
    }
}

#[async_trait]
impl Triage for SqliteStore {
    async fn set_issue_status(&self, viewer: Viewer, issue_id: i64, status: IssueStatus) -> StoreResult<Option<Issue>> {
        // The store is given times, but this verb predates that; the entry
        // it records is stamped by the server's one clock.
        self.change_issue_status(viewer, issue_id, status, None, None, crate::clock::now_millis()).await
    }

    async fn ignore_issue(
        &self,
        viewer: Viewer,
        issue_id: i64,
        condition: IgnoreCondition,
        now: i64,
    ) -> StoreResult<Option<Issue>> {
        self.change_issue_status(viewer, issue_id, IssueStatus::Ignored, Some(condition), None, now).await
    }

    async fn resolve_issue(
        &self,
        viewer: Viewer,
        issue_id: i64,
        resolution: &Resolution,
    ) -> StoreResult<Option<Issue>> {
        let project_id: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT i.project_id FROM issues i JOIN projects p ON p.id = i.project_id WHERE {VISIBLE_ORG} AND i.id = ?3"
        ))
        .bind(viewer.is_admin)
        .bind(viewer.user_id)
        .bind(issue_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable("finding an issue to resolve"))?;
        let Some(project_id) = project_id else { return Ok(None) };
        let releases = if *resolution == Resolution::Now {
            Vec::new()
        } else {
            let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
            project_releases_seen(&mut conn, project_id).await.map_err(unavailable("reading a project's releases"))?
        };
        let resolved = super::resolve_sql::resolved_in(resolution, &releases)?;
        // The activity entry is written with the resolution (change_issue_status).
        self.change_issue_status(
            viewer,
            issue_id,
            IssueStatus::Resolved,
            None,
            resolved.as_ref(),
            crate::clock::now_millis(),
        )
        .await
    }

    async fn end_expired_ignores(&self, now: i64) -> StoreResult<u64> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        if !any_expired_ignore(&mut conn, now).await.map_err(unavailable("looking for ignores that ended"))? {
            return Ok(0);
        }
        drop(conn);
        let mut tx = self.begin_write().await?;
        let ended = end_expired_ignore_rows(&mut tx, now).await.map_err(unavailable("ending ignores"))?;
        tx.commit().await.map_err(unavailable("committing ended ignores"))?;
        Ok(ended)
    }

    async fn merge_issues(&self, viewer: Viewer, merge: &IssueMerge, at: i64) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let outcome = merge_issue_rows(&mut tx, viewer, merge, at).await.map_err(unavailable("merging issues"))?;
        if matches!(outcome, MergeOutcome::Merged) {
            tx.commit().await.map_err(unavailable("committing a merge"))?;
        }
        outcome.answer(merge.target())
    }

    async fn assign_issue(
        &self,
        viewer: Viewer,
        issue_id: i64,
        assignee: Option<&str>,
        at: i64,
    ) -> StoreResult<Assignment> {
        let mut tx = self.begin_write().await?;
        let outcome = assign_issue_row(&mut tx, viewer, issue_id, assignee, at)
            .await
            .map_err(unavailable("assigning an issue"))?;
        tx.commit().await.map_err(unavailable("committing an assignment"))?;
        match outcome {
            Assignment::Done(issue) => {
                let mut issues = vec![*issue];
                self.fill_environments_and_releases(&mut issues).await?;
                Ok(issues.pop().map(|i| Assignment::Done(Box::new(i))).unwrap_or(Assignment::IssueNotFound))
            }
            other => Ok(other),
        }
    }

    async fn add_issue_comment(
        &self,
        viewer: Viewer,
        issue_id: i64,
        text: &str,
        at: i64,
    ) -> StoreResult<Option<Activity>> {
        let mut tx = self.begin_write().await?;
        let comment =
            add_comment_row(&mut tx, viewer, issue_id, text, at).await.map_err(unavailable("adding a comment"))?;
        tx.commit().await.map_err(unavailable("committing a comment"))?;
        Ok(comment)
    }

    async fn issue_activity(
        &self,
        viewer: Viewer,
        issue_id: i64,
        kind: Option<ActivityKind>,
        page: Page,
    ) -> StoreResult<Option<PageOf<Activity>>> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        if visible_issue_org(&mut conn, viewer, issue_id).await.map_err(unavailable("looking up an issue"))?.is_none() {
            return Ok(None);
        }
        activity_page(&mut conn, issue_id, kind, page)
            .await
            .map(Some)
            .map_err(unavailable("reading an issue's activity"))
    }

    async fn record_issue_activity(
        &self,
        issue_id: i64,
        actor: Option<i64>,
        kind: ActivityKind,
        detail: &serde_json::Value,
        at: i64,
    ) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        insert_activity(&mut conn, issue_id, actor, kind, detail, at)
            .await
            .map_err(unavailable("recording an issue's activity"))?;
        Ok(())
    }
}

#[async_trait]
impl Alerting for SqliteStore {
    async fn create_alert_rule(&self, project_id: i64, rule: &NewAlertRule, at: i64) -> StoreResult<AlertRule> {
        let mut tx = self.begin_write().await?;
        let id = insert_alert_rule(&mut tx, project_id, rule, at).await.map_err(|e| {
            if e.as_database_error().is_some_and(|d| d.is_foreign_key_violation()) {
                StoreError::NotFound("project not found".into())
            } else {
                unavailable("creating an alert rule")(e)
            }
        })?;
        let created = load_alert_rules(&mut tx, &format!("r.id = {id}"))
            .await
            .map_err(unavailable("reading an alert rule"))?
            .pop()
            .ok_or_else(|| StoreError::Unavailable("the new alert rule vanished".into()))?;
        tx.commit().await.map_err(unavailable("committing an alert rule"))?;
        Ok(created)
    }

    async fn alert_rules(&self, project_id: i64) -> StoreResult<Vec<AlertRule>> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        load_alert_rules(&mut conn, &format!("r.project_id = {project_id}"))
            .await
            .map_err(unavailable("reading alert rules"))
    }

    async fn alert_rule(&self, viewer: Viewer, id: i64) -> StoreResult<Option<AlertRule>> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        if !alert_rule_visible(&mut conn, viewer, id).await.map_err(unavailable("checking access to a rule"))? {
            return Ok(None);
        }
        Ok(load_alert_rules(&mut conn, &format!("r.id = {id}"))
            .await
            .map_err(unavailable("reading an alert rule"))?
            .pop())
    }

    async fn update_alert_rule(
        &self,
        viewer: Viewer,
        id: i64,
        rule: &NewAlertRule,
        replace_channels: bool,
    ) -> StoreResult<Option<AlertRule>> {
        let mut tx = self.begin_write().await?;
        if !alert_rule_visible(&mut tx, viewer, id).await.map_err(unavailable("checking access to a rule"))? {
            return Ok(None);
        }
        update_alert_rule_row(&mut tx, id, rule, replace_channels)
            .await
            .map_err(unavailable("changing an alert rule"))?;
        let updated = load_alert_rules(&mut tx, &format!("r.id = {id}"))
            .await
            .map_err(unavailable("reading an alert rule"))?
            .pop();
        tx.commit().await.map_err(unavailable("committing an alert rule"))?;
        Ok(updated)
    }

    async fn delete_alert_rule(&self, viewer: Viewer, id: i64) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        if !alert_rule_visible(&mut tx, viewer, id).await.map_err(unavailable("checking access to a rule"))? {
            return Ok(false);
        }
        sqlx::query(&q("DELETE FROM alert_rules WHERE id = ?"))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable("deleting an alert rule"))?;
        tx.commit().await.map_err(unavailable("committing a deletion"))?;
        Ok(true)
    }

    async fn record_channel_result(
        &self,
        channel_id: i64,
        at: i64,
        status: Option<i64>,
        failure: Option<&str>,
    ) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        record_channel_row(&mut conn, channel_id, at, status, failure)
            .await
            .map_err(unavailable("recording a channel's result"))
    }

    async fn claim_deliveries(&self, node: &str, now: i64, lease_ms: i64, limit: i64) -> StoreResult<Vec<DueDelivery>> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        if !any_due_delivery(&mut conn, now).await.map_err(unavailable("looking for due alert deliveries"))? {
            return Ok(Vec::new());
        }
        drop(conn);
        let mut tx = self.begin_write().await?;
        let due = claim_due_deliveries(&mut tx, node, now, lease_ms, limit)
            .await
            .map_err(unavailable("claiming alert deliveries"))?;
        tx.commit().await.map_err(unavailable("committing a claim"))?;
        Ok(due)
    }

    async fn finish_delivery(&self, id: i64, node: &str, now: i64, result: &AttemptResult) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let held =
            finish_delivery_row(&mut tx, id, node, now, result).await.map_err(unavailable("recording a delivery"))?;
        tx.commit().await.map_err(unavailable("committing a delivery"))?;
        Ok(held)
    }

    async fn release_delivery_claims(&self) -> StoreResult<()> {
        sqlx::query("UPDATE alert_deliveries SET claimed_by = NULL, claimed_until = NULL WHERE status = 'pending'")
            .execute(&self.pool)
            .await
            .map_err(unavailable("releasing delivery claims"))?;
        Ok(())
    }

    async fn project_deliveries(&self, project_id: i64, limit: i64) -> StoreResult<Vec<DeliveryInfo>> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        list_delivery_rows(&mut conn, &format!("d.project_id = {project_id}"), limit)
            .await
            .map_err(unavailable("listing alert deliveries"))
    }

    async fn issue_deliveries(&self, issue_id: i64, limit: i64) -> StoreResult<Vec<DeliveryInfo>> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        list_delivery_rows(&mut conn, &format!("d.issue_id = {issue_id}"), limit)
            .await
            .map_err(unavailable("listing an issue's alerts"))
    }

    async fn pending_deliveries(&self) -> StoreResult<Vec<(String, i64)>> {
        sqlx::query_as(
            "SELECT channel_kind, COUNT(*) FROM alert_deliveries WHERE status = 'pending' GROUP BY channel_kind ORDER BY channel_kind",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable("counting pending deliveries"))
    }

    async fn alert_email_recipients(&self, project_id: i64) -> StoreResult<Vec<String>> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        email_recipient_rows(&mut conn, project_id).await.map_err(unavailable("listing alert e-mail recipients"))
    }

    async fn reserve_alert_email(&self, address: &str, now: i64, cap: i64, window_ms: i64) -> StoreResult<bool> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        reserve_email_row(&mut conn, address, now, cap, window_ms).await.map_err(unavailable("counting alert e-mails"))
    }

    async fn hold_alert_email(&self, address: &str, now: i64, summary: &str, url: &str) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        hold_email_row(&mut conn, address, now, summary, url).await.map_err(unavailable("holding an alert e-mail"))
    }

    async fn take_alert_email_digests(&self, now: i64) -> StoreResult<Vec<HeldEmail>> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        take_digest_rows(&mut conn, now).await.map_err(unavailable("taking alert e-mail digests"))
    }

    async fn set_alert_email_opt_out(&self, user_id: i64, project_id: i64, opted_out: bool) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        set_opt_out_row(&mut conn, user_id, project_id, opted_out)
            .await
            .map_err(unavailable("changing an e-mail opt-out"))
    }

    async fn alert_email_opt_outs(&self, user_id: i64) -> StoreResult<Vec<i64>> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        opt_out_rows(&mut conn, user_id).await.map_err(unavailable("reading e-mail opt-outs"))
    }
}

#[async_trait]
impl DataLifecycle for SqliteStore {
    async fn delete_issue(&self, viewer: Viewer, issue_id: i64) -> StoreResult<bool> {
        let org_id: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT p.org_id FROM issues i JOIN projects p ON p.id = i.project_id WHERE {VISIBLE_ORG} AND i.id = ?3"
        ))
        .bind(viewer.is_admin)
        .bind(viewer.user_id)
        .bind(issue_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable("looking up an issue"))?;
        let Some(org_id) = org_id else { return Ok(false) };
        self.require_org_admin(viewer, org_id, "delete issues").await?;
        // Fingerprints merged into it go first, so their later events start
        // issues of their own rather than land in the one being deleted.
        sqlx::query("DELETE FROM issue_aliases WHERE issue_id = ?")
            .bind(issue_id)
            .execute(&self.pool)
            .await
            .map_err(unavailable("detaching an issue's merged fingerprints"))?;
        sqlx::query("UPDATE issues SET fingerprint = ? WHERE id = ?")
            .bind(format!("deleted:{issue_id}"))
            .bind(issue_id)
            .execute(&self.pool)
            .await
            .map_err(unavailable("detaching an issue"))?;
        let sql = "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE issue_id = ? LIMIT ?)";
        self.delete_in_pages(sql, issue_id, "deleting an issue's events").await?;
        sqlx::query("DELETE FROM issues WHERE id = ?")
            .bind(issue_id)
            .execute(&self.pool)
            .await
            .map_err(unavailable("deleting an issue"))?;
        Ok(true)
    }

    async fn delete_project(&self, viewer: Viewer, project_id: i64, at: i64) -> StoreResult<bool> {
        let org_id: Option<i64> =
            sqlx::query_scalar(&format!("SELECT p.org_id FROM projects p WHERE {VISIBLE_ORG} AND p.id = ?3"))
                .bind(viewer.is_admin)
                .bind(viewer.user_id)
                .bind(project_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable("looking up a project"))?;
        let Some(org_id) = org_id else { return Ok(false) };
        self.require_org_admin(viewer, org_id, "delete projects").await?;
        sqlx::query("UPDATE project_keys SET revoked_at = ? WHERE project_id = ? AND revoked_at IS NULL")
            .bind(at)
            .bind(project_id)
            .execute(&self.pool)
            .await
            .map_err(unavailable("revoking a project's keys"))?;
        for (table, what) in [("events", "deleting a project's events"), ("issues", "deleting a project's issues")] {
            let sql = format!("DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE project_id = ? LIMIT ?)");
            self.delete_in_pages(&sql, project_id, what).await?;
        }
        sqlx::query("DELETE FROM projects WHERE id = ?")
            .bind(project_id)
            .execute(&self.pool)
            .await
            .map_err(unavailable("deleting a project"))?;
        Ok(true)
    }

    async fn export_marks(&self, project_id: i64) -> StoreResult<ExportMarks> {
        let (last_issue_id, last_event_row): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT MAX(id) FROM issues WHERE project_id = ?1), \
                    (SELECT MAX(id) FROM events WHERE project_id = ?1)",
        )
        .bind(project_id)
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable("reading where an export stops"))?;
        Ok(ExportMarks { last_issue_id: last_issue_id.unwrap_or(0), last_event_row: last_event_row.unwrap_or(0) })
    }

    async fn export_issues(&self, project_id: i64, after: i64, up_to: i64, limit: i64) -> StoreResult<Vec<Issue>> {
        let rows = sqlx::query(&format!(
            "SELECT {ISSUE_COLUMNS} FROM issues i WHERE i.project_id = ? AND i.id > ? AND i.id <= ? \
             ORDER BY i.id LIMIT ?"
        ))
        .bind(project_id)
        .bind(after)
        .bind(up_to)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable("exporting issues"))?;
        let mut issues =
            rows.iter().map(issue_from_row).collect::<Result<Vec<_>, _>>().map_err(unavailable("reading issues"))?;
        self.fill_environments_and_releases(&mut issues).await?;
        Ok(issues)
    }

    async fn export_events(
        &self,
        project_id: i64,
        after: i64,
        up_to: i64,
        limit: i64,
    ) -> StoreResult<Vec<(i64, StoredEvent)>> {
        let rows = sqlx::query(
            "SELECT id, event_id, issue_id, project_id, received_at, payload, body FROM events \
             WHERE project_id = ? AND id > ? AND id <= ? AND issue_id IS NOT NULL ORDER BY id LIMIT ?",
        )
        .bind(project_id)
        .bind(after)
        .bind(up_to)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable("exporting events"))?;
        rows.iter()
            .map(|row| Ok((row.try_get::<i64, _>("id")?, event_from_row(row)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(unavailable("reading events"))
    }

    async fn take_retention_lease(&self, node: &str, now: i64, until: i64) -> StoreResult<bool> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        take_retention_lease_in(&mut conn, node, now, until).await.map_err(unavailable("taking the retention lease"))
    }

    async fn stored_per_project(&self) -> StoreResult<Vec<(i64, i64)>> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        stored_per_project_in(&mut conn).await.map_err(unavailable("counting stored events"))
    }

    async fn stored_per_issue(&self, project_id: i64) -> StoreResult<Vec<(i64, i64, i64)>> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        stored_per_issue_in(&mut conn, project_id).await.map_err(unavailable("counting stored events"))
    }

    async fn issue_event_ages(&self, issue_id: i64) -> StoreResult<Vec<EventAge>> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        issue_event_ages_in(&mut conn, issue_id).await.map_err(unavailable("reading an issue's events"))
    }

    async fn evict_events(&self, issue_id: i64, ids: &[i64]) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let n = evict_in(&mut tx, issue_id, ids).await.map_err(unavailable("evicting events"))?;
        tx.commit().await.map_err(unavailable("committing an eviction"))?;
        Ok(n)
    }

    async fn expire_events(&self, project_id: i64, before: i64, limit: i64) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let events =
            expired_events_in(&mut tx, project_id, before, limit).await.map_err(unavailable("finding old events"))?;
        let n = expire_in(&mut tx, &events, before).await.map_err(unavailable("deleting old events"))?;
        tx.commit().await.map_err(unavailable("committing old events' deletion"))?;
        Ok(n)
    }

    async fn remove_empty_issues(&self, project_id: i64, before: i64, limit: i64) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let n = remove_empty_issues_in(&mut tx, project_id, before, limit)
            .await
            .map_err(unavailable("removing issues without events"))?;
        tx.commit().await.map_err(unavailable("committing removed issues"))?;
        Ok(n)
    }

    async fn events_to_lighten(&self, before: i64, limit: i64) -> StoreResult<Vec<(i64, String)>> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        events_to_lighten_in(&mut conn, before, limit).await.map_err(unavailable("finding events to lighten"))
    }

    async fn replace_lightened(&self, payloads: &[(i64, String)]) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let n = replace_lightened_in(&mut tx, payloads).await.map_err(unavailable("lightening events"))?;
        tx.commit().await.map_err(unavailable("committing lightened events"))?;
        Ok(n)
    }
}
