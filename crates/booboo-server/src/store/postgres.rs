//! The PostgreSQL store: the scale-out path, several booboo nodes sharing one
//! database. Correctness across nodes comes from the database alone: unique
//! constraints with `INSERT … ON CONFLICT`, row locks taken by upserts, and
//! advisory locks around migrations; no node keeps state of its own.

use super::batch_counters::BatchCounters;
use super::migrations::{self, Backend};
use super::rows::*;
use super::search_sql::{issue_list_query, Dialect};
use super::*;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Postgres, Row, Transaction};
use std::str::FromStr;
use std::time::Duration;

pub struct PostgresStore {
    pool: PgPool,
    installation_quota: quota::InstallationQuota,
    payload_codec: stored_payload::PayloadCodec,
}

row_readers!(PgRow);
super::quota_sql::quota_queries!(sqlx::PgConnection);
super::search_sql::search_runner!(PgPool, PgRow, pg_text, &super::search_sql::POSTGRES, VISIBLE_ORG);
super::alert_sql::alert_queries!(sqlx::PgConnection, PgRow);
super::retention_sql::retention_queries!(sqlx::PgConnection);

/// Retention locks an issue's row before deleting its events, in the order
/// ingest locks issues, so the two never deadlock.
const LOCK_ISSUES: &str = " FOR UPDATE";
super::key_sql::key_queries!(sqlx::PgConnection);
super::stored_payload::payload_dictionary_queries!(PgPool);
super::batch_counters::batch_counter_queries!(sqlx::PgConnection, pg_text, "LEAST", "GREATEST");
super::project_limits_sql::project_limits_queries!(sqlx::PgConnection);
// A merge locks the issues it reads until it commits.
super::merge_sql::merge_queries!(sqlx::PgConnection, " FOR UPDATE");
super::resolve_sql::resolve_queries!(sqlx::PgConnection);
super::activity_sql::activity_queries!(sqlx::PgConnection, PgRow);

/// Numbers the alert queries' `?` placeholders as PostgreSQL's `$1, $2, …`.
fn q(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// Nodes claim deliveries side by side: a row another node is claiming is
/// skipped rather than waited for, so each delivery goes to one node.
const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";

/// The oldest PostgreSQL booboo runs on (identity columns, `ON CONFLICT`).
const MINIMUM_SERVER_VERSION: i64 = 120000;

/// Serialises migrations when several nodes start at once.
const MIGRATION_LOCK: i64 = 0x626f_6f62_6f6f;

/// Attempts at a batch that lost a deadlock or serialisation race to a
/// concurrent batch from another node; the loser simply runs again.
const BATCH_ATTEMPTS: usize = 5;

/// Whether an error is a lost race that running the batch again may win:
/// a deadlock (SQLSTATE 40P01) or a serialisation failure (40001). Read from
/// the SQLSTATE, never the message, which an event's own text can appear in.
pub(crate) fn is_lost_race(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|code| code == "40P01" || code == "40001")
}

/// A failed attempt at a batch, and whether another attempt may succeed.
struct BatchFailure {
    error: StoreError,
    lost_race: bool,
}

fn batch_failure(doing: &'static str) -> impl FnOnce(sqlx::Error) -> BatchFailure {
    move |e| BatchFailure { lost_race: is_lost_race(&e), error: StoreError::Unavailable(format!("{doing}: {e}")) }
}

/// PostgreSQL's text cannot hold U+0000, which JSON and SQLite allow. Text
/// from an event is stored with it written as `\u0000`, the way the event's
/// JSON payload writes it, rather than refused (and retried) for ever.
fn pg_text(text: &str) -> String {
    text.replace('\0', "\\u0000")
}

/// Serialises creating the first administrator across nodes.
const FIRST_ADMIN_LOCK: i64 = 0x626f_6f62_6f61;

/// Reads a sign-in counter, creating it if new, and locks its row until the
/// caller's transaction ends.
async fn lock_counter(tx: &mut Transaction<'_, Postgres>, key: &str) -> StoreResult<sign_in_limits::Counter> {
    let row = sqlx::query(
        "INSERT INTO sign_in_limits (key, window_ends_at, checks, next_check_at) VALUES ($1, 0, 0, 0) \
         ON CONFLICT (key) DO UPDATE SET key = excluded.key RETURNING window_ends_at, checks, next_check_at",
    )
    .bind(key)
    .fetch_one(&mut **tx)
    .await
    .map_err(unavailable("reading a sign-in count"))?;
    counter_from_row(&row).map_err(unavailable("reading a sign-in count"))
}

const DIALECT: Dialect = Dialect { placeholder: |n| format!("${n}"), search: &super::search_sql::POSTGRES };

/// The access rule every read shares: administrators see everything, other
/// users the organisations they are members of. Binds: is_admin, user_id.
const VISIBLE_ORG: &str = "($1 OR p.org_id IN (SELECT org_id FROM memberships WHERE user_id = $2))";

impl PostgresStore {
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
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
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
        let mut tx = self.pool.begin().await.map_err(unavailable("starting a transaction"))?;
        let prior: Option<String> = sqlx::query_scalar("SELECT status FROM issues WHERE id = $1 FOR UPDATE")
            .bind(issue_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable("reading an issue's status"))?;
        let row = sqlx::query(&format!(
            "UPDATE issues SET status = $4, is_regression = CASE WHEN $4 = 'ignored' THEN is_regression ELSE FALSE END, \
             ignore_until = $5, ignore_until_count = event_count + $6, ignore_until_users = user_count + $7, \
             resolved_kind = $8, resolved_release = $9, resolved_semver = $10 \
             WHERE id = $3 AND project_id IN (SELECT p.id FROM projects p WHERE {VISIBLE_ORG}) RETURNING {}",
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
        sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM projects p WHERE {VISIBLE_ORG} AND p.id = $3)"))
            .bind(viewer.is_admin)
            .bind(viewer.user_id)
            .bind(project_id)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable("checking access to a project"))
    }

    pub async fn open(url: &str) -> StoreResult<PostgresStore> {
        let shown = redact_url(url);
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Incompatible(format!("invalid PostgreSQL URL {shown}: {e}")))?;
        // One direct connection first: a pool only reports "timed out", while
        // a single attempt says why (refused, unknown database, bad password).
        let probe = tokio::time::timeout(
            Duration::from_secs(10),
            <sqlx::PgConnection as sqlx::Connection>::connect_with(&options),
        )
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!("cannot connect to PostgreSQL at {shown}: no answer within 10 s"))
        })?
        .map_err(|e| StoreError::Unavailable(format!("cannot connect to PostgreSQL at {shown}: {}", one_line(&e))))?;
        let _ = sqlx::Connection::close(probe).await;
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(5))
            .after_release(|conn, _| {
                Box::pin(async move {
                    // Never hand out a connection whose transaction did not
                    // end cleanly: let a queued rollback run, then close the
                    // connection if it still counts an open transaction.
                    if !conn.is_in_transaction() {
                        return Ok(true);
                    }
                    conn.ping().await?;
                    Ok(!conn.is_in_transaction())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot connect to PostgreSQL at {shown}: {}", one_line(&e)))
            })?;
        let version: String = sqlx::query_scalar("SHOW server_version_num")
            .fetch_one(&pool)
            .await
            .map_err(unavailable("reading the server version"))?;
        let version: i64 = version.trim().parse().unwrap_or(0);
        if version < MINIMUM_SERVER_VERSION {
            return Err(StoreError::Incompatible(format!(
                "PostgreSQL at {shown} is version {}.{}, too old: booboo needs 12 or newer",
                version / 10000,
                version % 10000
            )));
        }
        let store = PostgresStore { pool, installation_quota: Default::default(), payload_codec: Default::default() };
        store.migrate().await?;
        // Bodies compressed with a dictionary read back from the first request.
        let dictionaries = store.payload_dictionaries().await?;
        store.payload_codec.install(&dictionaries, crate::clock::now_millis());
        Ok(store)
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await
            .map_err(unavailable("waiting for the migration lock"))?;
        let result = self.migrate_locked(&mut conn).await;
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK).execute(&mut *conn).await;
        result
    }

    async fn migrate_locked(&self, conn: &mut sqlx::PgConnection) -> StoreResult<()> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *conn)
        .await
        .map_err(unavailable("creating the migrations table"))?;
        let applied: Vec<String> = sqlx::query_scalar("SELECT name FROM schema_migrations ORDER BY name")
            .fetch_all(&mut *conn)
            .await
            .map_err(unavailable("reading applied migrations"))?;
        for migration in migrations::pending(Backend::Postgres, &applied).map_err(StoreError::Incompatible)? {
            let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(unavailable("starting a migration"))?;
            sqlx::raw_sql(migration.sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::Incompatible(format!("migration {} failed: {e}", migration.name)))?;
            sqlx::query(
                "INSERT INTO schema_migrations (name, applied_at) VALUES ($1, (extract(epoch FROM now()) * 1000)::bigint)",
            )
            .bind(migration.name)
            .execute(&mut *tx)
            .await
            .map_err(unavailable("recording a migration"))?;
            tx.commit().await.map_err(unavailable("committing a migration"))?;
            tracing::info!(migration = migration.name, "applied migration");
        }
        Ok(())
    }

    /// One attempt at a batch: events in a fixed order (project, then
    /// fingerprint) so that concurrent batches on other nodes take row locks
    /// in the same order and rarely deadlock.
    async fn store_batch_once(&self, batch: &[NewEvent]) -> Result<Vec<StoreOutcome>, BatchFailure> {
        let mut order: Vec<usize> = (0..batch.len()).collect();
        order.sort_by(|&a, &b| {
            (batch[a].project_id, &batch[a].processed.fingerprint.fingerprint)
                .cmp(&(batch[b].project_id, &batch[b].processed.fingerprint.fingerprint))
        });
        let mut tx = self.pool.begin().await.map_err(batch_failure("starting a batch"))?;
        let rules = rules_for_batch(&mut tx, batch).await.map_err(batch_failure("reading alert rules"))?;
        // Quota windows are locked before any issue row, in project order.
        let mut quotas = quotas_for_batch(&mut tx, batch, self.installation_quota.get())
            .await
            .map_err(batch_failure("reading the projects' quotas"))?;
        let mut outcomes = vec![StoreOutcome::Duplicate; batch.len()];
        let mut counters = BatchCounters::default();
        for &i in &order {
            let rules = rules.get(&batch[i].project_id).map(Vec::as_slice).unwrap_or_default();
            outcomes[i] = store_one(&mut tx, &batch[i], rules, &mut quotas, &mut counters)
                .await
                .map_err(batch_failure("storing an event"))?;
        }
        save_quotas(&mut tx, &quotas).await.map_err(batch_failure("saving the projects' quotas"))?;
        write_batch_counters(&mut tx, &counters).await.map_err(batch_failure("counting a batch's events"))?;
        tx.commit().await.map_err(batch_failure("committing a batch"))?;
        Ok(outcomes)
    }
}

/// sqlx errors can span lines; a start-up failure should read as one.
fn one_line(e: &sqlx::Error) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Creates a project in an organisation with its first key: the end that
/// both ways of creating a project share. The caller commits.
async fn insert_project(
    tx: &mut sqlx::PgConnection,
    org_id: i64,
    org_slug: &str,
    project_slug: &str,
    token: &str,
    at: i64,
) -> StoreResult<(Project, ProjectKey)> {
    let project_id: i64 = sqlx::query_scalar(
        "INSERT INTO projects (org_id, slug, name, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(org_id)
    .bind(project_slug)
    .bind(project_slug)
    .bind(at)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict(format!("project {org_slug}/{project_slug} already exists"))
        } else {
            StoreError::Unavailable(format!("creating a project: {e}"))
        }
    })?;
    let key_row = sqlx::query(
        "INSERT INTO project_keys (project_id, token, label, created_at) VALUES ($1, $2, 'default', $3) \
         RETURNING id, project_id, token, label, created_at, revoked_at",
    )
    .bind(project_id)
    .bind(token)
    .bind(at)
    .fetch_one(&mut *tx)
    .await
    .map_err(unavailable("creating a project key"))?;
    let key = key_from_row(&key_row).map_err(unavailable("reading a project key"))?;
    let project_row = sqlx::query(&format!(
        "SELECT {PROJECT_COLUMNS} FROM projects p JOIN organisations o ON o.id = p.org_id WHERE p.id = $1"
    ))
    .bind(project_id)
    .fetch_one(&mut *tx)
    .await
    .map_err(unavailable("reading a project"))?;
    let project = project_from_row(&project_row).map_err(unavailable("reading a project"))?;
    Ok((project, key))
}

/// Stores one event inside the batch's transaction.
async fn store_one(
    tx: &mut Transaction<'_, Postgres>,
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
         body, tags, user_email) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (project_id, event_id) DO NOTHING RETURNING id",
    )
    .bind(e.project_id)
    .bind(&event.event_id)
    .bind(e.received_at)
    .bind(e.occurred_at)
    .bind(pg_text(&event.environment))
    .bind(pg_text(&event.release))
    .bind(event.level.as_str())
    .bind(e.processed.user_key.as_deref().map(pg_text))
    .bind(if e.body.is_some() { "" } else { e.payload.as_str() })
    .bind(e.body.as_deref())
    .bind(&e.tags)
    .bind(e.user_email.as_deref().map(pg_text))
    .fetch_optional(&mut **tx)
    .await?
    };
    if inserted.is_none() && not_stored.is_none() {
        quotas.refund(e.project_id);
        return Ok(StoreOutcome::Duplicate);
    }

    // Alert rules need to know whether the issue was resolved before this
    // event: the row is locked from here to the commit (the upsert below
    // would lock it anyway, in the same order), so no other node changes it
    // in between.
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
            sqlx::query_scalar("SELECT status FROM issues WHERE project_id = $1 AND fingerprint = $2 FOR UPDATE")
                .bind(e.project_id)
                .bind(&fingerprint)
                .fetch_optional(&mut **tx)
                .await?;
        #[allow(clippy::type_complexity)]
        let row: (i64, i64, bool, String, Option<String>, Option<String>, bool) = sqlx::query_as(
            "INSERT INTO issues (project_id, fingerprint, title, culprit, level, status, first_seen, last_seen, event_count, first_release) \
             VALUES ($1, $2, $3, $4, $5, 'unresolved', $6, $6, 1, NULLIF($7, '')) \
             ON CONFLICT (project_id, fingerprint) DO UPDATE SET \
               title = excluded.title, culprit = excluded.culprit, level = excluded.level, \
               first_seen = LEAST(issues.first_seen, excluded.first_seen), last_seen = GREATEST(issues.last_seen, excluded.last_seen), \
               event_count = issues.event_count + 1, \
               first_release = COALESCE(issues.first_release, excluded.first_release), \
               is_regression = CASE WHEN issues.status = 'resolved' AND issues.resolved_kind IS NULL THEN TRUE ELSE issues.is_regression END, \
               status = CASE WHEN issues.status = 'resolved' AND issues.resolved_kind IS NULL THEN 'unresolved' ELSE issues.status END \
             RETURNING id, event_count, (ignore_until_count IS NOT NULL OR ignore_until_users IS NOT NULL), \
               status, resolved_kind, resolved_release, resolved_semver",
        )
        .bind(e.project_id)
        .bind(&fingerprint)
        .bind(pg_text(&e.processed.title))
        .bind(pg_text(&e.processed.culprit))
        .bind(event.level.as_str())
        .bind(e.received_at)
        .bind(pg_text(&event.release))
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
            sqlx::query("UPDATE events SET issue_id = $1 WHERE id = $2")
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
        Some(resolved) => regress_by_release(tx, e.project_id, issue_id, resolved, &pg_text(&event.release)).await?,
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
        sqlx::query("UPDATE events SET kept = $1 WHERE id = $2").bind(true).bind(row_id).execute(&mut **tx).await?;
    }
    if !rules.is_empty() {
        let facts = IssueFacts { created: event_count == 1, regressed };
        fire_alert_rules(tx, rules, e, issue_id, &facts).await?;
    }

    if let Some(user_key) = &e.processed.user_key {
        let new_user =
            sqlx::query("INSERT INTO issue_users (issue_id, user_key) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(issue_id)
                .bind(pg_text(user_key))
                .execute(&mut **tx)
                .await?
                .rows_affected();
        if new_user > 0 {
            sqlx::query("UPDATE issues SET user_count = user_count + 1 WHERE id = $1")
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

#[async_trait]
impl Maintenance for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn refresh_planner_statistics(&self) -> StoreResult<()> {
        Ok(()) // autovacuum analyses changed tables by itself
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(unavailable("pinging"))?;
        Ok(())
    }

    async fn check_writable(&self) -> StoreResult<()> {
        // An update that changes nothing still writes a row version and its
        // WAL record, which fails with 53100 while the server's disk is full.
        sqlx::query(
            "UPDATE schema_migrations SET applied_at = applied_at \
             WHERE name = (SELECT MAX(name) FROM schema_migrations)",
        )
        .execute(&self.pool)
        .await
        .map_err(unavailable("writing a probe row"))?;
        Ok(())
    }

    async fn backup_to(&self, _dest: &std::path::Path) -> StoreResult<()> {
        Err(StoreError::Incompatible(
            "`booboo backup` copies SQLite databases; back up PostgreSQL with its own tools, \
             e.g. `pg_dump --format=custom` (docs/operations.md)"
                .into(),
        ))
    }

    async fn used_bytes(&self) -> StoreResult<u64> {
        let bytes: i64 = sqlx::query_scalar(super::retention_sql::POSTGRES_USED_BYTES)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable("measuring the database"))?;
        Ok(bytes.max(0) as u64)
    }

    /// Marks the space of deleted events reusable now rather than when
    /// autovacuum next comes by: a plain `VACUUM` (no lock against reads or
    /// writes; pages without dead rows are skipped). The table's files keep
    /// the space for new events rather than return it.
    async fn reclaim_space(&self, _keep_bytes: u64) -> StoreResult<()> {
        sqlx::raw_sql("VACUUM events").execute(&self.pool).await.map_err(unavailable("vacuuming events"))?;
        Ok(())
    }
}

#[async_trait]
impl PayloadDictionaries for PostgresStore {
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
impl Ingest for PostgresStore {
    async fn ingest_target(&self, token: &str) -> StoreResult<Option<IngestTarget>> {
        if token.contains('\0') {
            // No token holds one; PostgreSQL would refuse the lookup.
            return Ok(None);
        }
        let project_id: Option<i64> =
            sqlx::query_scalar("SELECT project_id FROM project_keys WHERE token = $1 AND revoked_at IS NULL")
                .bind(token)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable("looking up an ingestion token"))?;
        Ok(project_id.map(|project_id| IngestTarget { project_id }))
    }

    async fn record_handshake(&self, project_id: i64, sdk: &str, at: i64) -> StoreResult<()> {
        sqlx::query("UPDATE projects SET connected_at = $1, connected_sdk = $2 WHERE id = $3")
            .bind(at)
            .bind(pg_text(sdk))
            .bind(project_id)
            .execute(&self.pool)
            .await
            .map_err(unavailable("recording a handshake"))?;
        Ok(())
    }

    async fn store_events(&self, batch: &[NewEvent]) -> StoreResult<Vec<StoreOutcome>> {
        let mut attempt = 1;
        loop {
            match self.store_batch_once(batch).await {
                Err(failure) if attempt < BATCH_ATTEMPTS && failure.lost_race => {
                    tracing::debug!("batch lost a race with another node ({}); retrying", failure.error);
                    attempt += 1;
                }
                result => return result.map_err(|failure| failure.error),
            }
        }
    }

    fn set_installation_rate_limit(&self, limit: Option<RateLimit>) {
        self.installation_quota.set(limit);
    }
}

#[async_trait]
impl Accounts for PostgresStore {
    async fn create_user(&self, email: &str, password_hash: &str, is_admin: bool, at: i64) -> StoreResult<User> {
        let row = sqlx::query(
            "INSERT INTO users (email, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4) \
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
        if email.contains('\0') {
            return Ok(None);
        }
        sqlx::query("SELECT id, email, password_hash, is_admin FROM users WHERE email = $1")
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
        sqlx::query("INSERT INTO api_tokens (user_id, token_hash, label, created_at) VALUES ($1, $2, $3, $4)")
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
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
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
            "INSERT INTO setup_tokens (token_hash, created_at, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
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
            "SELECT EXISTS (SELECT 1 FROM setup_tokens WHERE token_hash = $1 AND expires_at > $2) \
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
        // One transaction-scoped advisory lock: two browsers (or two nodes)
        // using the link at once cannot both see "no user yet".
        let mut tx = self.pool.begin().await.map_err(unavailable("starting a transaction"))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(FIRST_ADMIN_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(unavailable("locking the setup link"))?;
        let known: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM setup_tokens WHERE token_hash = $1 AND expires_at > $2)")
                .bind(setup_token_hash)
                .bind(at)
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable("checking a setup link"))?;
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&mut *tx)
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
            "INSERT INTO users (email, password_hash, is_admin, created_at) VALUES ($1, $2, TRUE, $3) \
             RETURNING id, email, password_hash, is_admin",
        )
        .bind(email)
        .bind(password_hash)
        .bind(at)
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable("creating the administrator"))?;
        sqlx::query("DELETE FROM setup_tokens")
            .execute(&mut *tx)
            .await
            .map_err(unavailable("forgetting setup links"))?;
        let user = user_from_row(&row).map_err(unavailable("reading a user"))?;
        tx.commit().await.map_err(unavailable("committing the administrator"))?;
        Ok(user)
    }

    async fn create_session(&self, token_hash: &str, user_id: i64, session: &Session) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
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
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2",
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
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(unavailable("ending a session"))?;
        Ok(())
    }

    async fn set_password(&self, user_id: i64, password_hash: &str, keep_session_hash: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(unavailable("starting a transaction"))?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable("changing a password"))?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
            .bind(user_id)
            .bind(keep_session_hash)
            .execute(&mut *tx)
            .await
            .map_err(unavailable("ending other sessions"))?;
        sqlx::query("DELETE FROM password_links WHERE user_id = $1 AND used_at IS NULL")
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
        // The upserts lock both rows until commit, so another node's request
        // for the same address or account waits and then reads this one's
        // count. Always the address first: requests lock in the same order.
        let mut tx = self.pool.begin().await.map_err(unavailable("starting a transaction"))?;
        let address = lock_counter(&mut tx, address_key).await?;
        let account = lock_counter(&mut tx, account_key).await?;
        let (address, account) = match sign_in_limits::reserve(address, account, limits, now) {
            Ok(counters) => counters,
            // Nothing was changed; dropping the transaction rolls it back.
            Err(refused) => return Ok(refused),
        };
        for (key, counter) in [(address_key, address), (account_key, account)] {
            sqlx::query(
                "UPDATE sign_in_limits SET window_ends_at = $1, checks = $2, next_check_at = $3 WHERE key = $4",
            )
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
        let mut tx = self.pool.begin().await.map_err(unavailable("starting a transaction"))?;
        sqlx::query("UPDATE sign_in_limits SET checks = GREATEST(checks - 1, 0) WHERE key = $1")
            .bind(address_key)
            .execute(&mut *tx)
            .await
            .map_err(unavailable("giving a sign-in check back"))?;
        sqlx::query("DELETE FROM sign_in_limits WHERE key = $1")
            .bind(account_key)
            .execute(&mut *tx)
            .await
            .map_err(unavailable("clearing an account's sign-in count"))?;
        tx.commit().await.map_err(unavailable("committing a sign-in"))
    }

    async fn create_password_link(&self, token_hash: &str, user_id: i64, at: i64, expires_at: i64) -> StoreResult<()> {
        sqlx::query("INSERT INTO password_links (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
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
             WHERE l.token_hash = $1 AND l.used_at IS NULL AND l.expires_at > $2",
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
        let mut tx = self.pool.begin().await.map_err(unavailable("starting a transaction"))?;
        // The row lock of the UPDATE makes a second, concurrent use wait and
        // then find the link used.
        let user_id: i64 = sqlx::query_scalar(
            "UPDATE password_links SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 \
             RETURNING user_id",
        )
        .bind(now)
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable("using a password link"))?
        .ok_or_else(|| StoreError::NotFound(PASSWORD_LINK_GONE.into()))?;
        let row = sqlx::query(
            "UPDATE users SET password_hash = $1 WHERE id = $2 RETURNING id, email, password_hash, is_admin",
        )
        .bind(password_hash)
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable("setting a password"))?;
        for (sql, doing) in [
            ("DELETE FROM sessions WHERE user_id = $1", "ending sessions"),
            ("DELETE FROM password_links WHERE user_id = $1 AND used_at IS NULL", "voiding password links"),
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
            ("DELETE FROM sessions WHERE expires_at <= $1", 0),
            ("DELETE FROM setup_tokens WHERE expires_at <= $1", 1),
            ("DELETE FROM password_links WHERE expires_at <= $1", 1),
            ("DELETE FROM invitations WHERE expires_at <= $1", 1),
            ("DELETE FROM sign_in_limits WHERE window_ends_at <= $1 AND next_check_at <= $1", 2),
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
        sqlx::query("SELECT id, label, created_at, revoked_at FROM api_tokens WHERE user_id = $1 ORDER BY id")
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
            sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL")
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
impl Organisations for PostgresStore {
    async fn set_membership(&self, org_slug: &str, user_id: i64, role: Role) -> StoreResult<()> {
        let org_id: Option<i64> = sqlx::query_scalar("SELECT id FROM organisations WHERE slug = $1")
            .bind(org_slug)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable("looking up an organisation"))?;
        let org_id = org_id.ok_or_else(|| StoreError::NotFound(format!("no organisation named {org_slug}")))?;
        sqlx::query(
            "INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, $3) \
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
            "SELECT o.slug, CASE WHEN $1 THEN 'admin' ELSE m.role END AS role FROM organisations o \
             LEFT JOIN memberships m ON m.org_id = o.id AND m.user_id = $2 \
             WHERE $1 OR m.user_id IS NOT NULL ORDER BY o.slug",
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
        if org_slug.contains('\0') {
            return Ok(None);
        }
        let role: Option<Option<String>> = sqlx::query_scalar(
            "SELECT CASE WHEN $1 THEN 'admin' ELSE m.role END FROM organisations o \
             LEFT JOIN memberships m ON m.org_id = o.id AND m.user_id = $2 WHERE o.slug = $3",
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
             JOIN organisations o ON o.id = m.org_id WHERE o.slug = $1 ORDER BY u.email",
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
            "DELETE FROM memberships WHERE user_id = $1 AND org_id = (SELECT id FROM organisations WHERE slug = $2)",
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
             SELECT $1, id, $2, $3, $4, $5 FROM organisations WHERE slug = $6",
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
             WHERE i.token_hash = $1 AND i.accepted_at IS NULL AND i.expires_at > $2",
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
        let mut tx = self.pool.begin().await.map_err(unavailable("starting a transaction"))?;
        // Marking it used first makes a second, concurrent use find nothing.
        let row = sqlx::query(
            "UPDATE invitations SET accepted_at = $1 WHERE token_hash = $2 AND accepted_at IS NULL AND expires_at > $1 \
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
            "INSERT INTO users (email, password_hash, is_admin, created_at) VALUES ($1, $2, FALSE, $3) \
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
        let user_row = sqlx::query("SELECT id, email, password_hash, is_admin FROM users WHERE email = $1")
            .bind(&email)
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable("reading an invited user"))?;
        let user = user_from_row(&user_row).map_err(unavailable("reading a user"))?;
        sqlx::query(
            "INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, $3) \
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
impl Projects for PostgresStore {
    async fn create_project(
        &self,
        org_slug: &str,
        project_slug: &str,
        token: &str,
        at: i64,
    ) -> StoreResult<(Project, ProjectKey)> {
        let mut tx = self.pool.begin().await.map_err(unavailable("starting a transaction"))?;
        sqlx::query(
            "INSERT INTO organisations (slug, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (slug) DO NOTHING",
        )
        .bind(org_slug)
        .bind(org_slug)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(unavailable("creating an organisation"))?;
        let org_id: i64 = sqlx::query_scalar("SELECT id FROM organisations WHERE slug = $1")
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
            "SELECT {PROJECT_COLUMNS} FROM projects p JOIN organisations o ON o.id = p.org_id WHERE o.slug = $1 AND p.slug = $2"
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
             WHERE project_id = $1 AND revoked_at IS NULL ORDER BY id",
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
        // PostgreSQL text cannot hold U+0000, and no slug has one: not found.
        if org_slug.contains('\0') || project_slug.contains('\0') {
            return Ok(None);
        }
        sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects p JOIN organisations o ON o.id = p.org_id \
             WHERE {VISIBLE_ORG} AND o.slug = $3 AND p.slug = $4"
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
        // `ON CONFLICT DO NOTHING RETURNING` tells who created the
        // organisation: of two people creating it at once, one gets its id
        // and becomes its admin, the other finds it existing.
        let mut tx = self.pool.begin().await.map_err(unavailable("starting a transaction"))?;
        let created: Option<i64> = sqlx::query_scalar(
            "INSERT INTO organisations (slug, name, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (slug) DO NOTHING RETURNING id",
        )
        .bind(org_slug)
        .bind(org_slug)
        .bind(at)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable("creating an organisation"))?;
        let org_id = match created {
            Some(id) => {
                sqlx::query("INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, 'admin')")
                    .bind(id)
                    .bind(viewer.user_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable("making the creator an admin"))?;
                id
            }
            None => {
                let id: i64 = sqlx::query_scalar("SELECT id FROM organisations WHERE slug = $1")
                    .bind(org_slug)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(unavailable("looking up an organisation"))?;
                let role: Option<String> =
                    sqlx::query_scalar("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
                        .bind(id)
                        .bind(viewer.user_id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(unavailable("looking up a role"))?;
                if !viewer.is_admin && role.as_deref() != Some("admin") {
                    return Err(StoreError::Forbidden(format!(
                        "only an admin of the organisation {org_slug} can create projects in it"
                    )));
                }
                id
            }
        };
        let created = insert_project(&mut tx, org_id, org_slug, project_slug, token, at).await?;
        tx.commit().await.map_err(unavailable("committing a project"))?;
        Ok(created)
    }

    async fn project_keys(&self, viewer: Viewer, project_id: i64) -> StoreResult<Option<Vec<ProjectKey>>> {
        if !self.project_visible(viewer, project_id).await? {
            return Ok(None);
        }
        sqlx::query(
            "SELECT id, project_id, token, label, created_at, revoked_at FROM project_keys WHERE project_id = $1 ORDER BY id",
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
            "INSERT INTO project_keys (project_id, token, label, created_at) VALUES ($1, $2, $3, $4) \
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
            "UPDATE project_keys SET revoked_at = $1 WHERE id = $2 AND project_id = $3 AND revoked_at IS NULL",
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
            sqlx::query_scalar(&format!("SELECT p.org_id FROM projects p WHERE {VISIBLE_ORG} AND p.id = $3"))
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
impl IssueReads for PostgresStore {
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
                Bind::Text(t) => query.bind(pg_text(&t)),
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
            "SELECT {ISSUE_COLUMNS} FROM issues i JOIN projects p ON p.id = i.project_id WHERE {VISIBLE_ORG} AND i.id = $3"
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
            "SELECT environment, event_count FROM issue_environments WHERE issue_id = $1 ORDER BY event_count DESC, environment",
        )
        .await?;
        let releases =
            counts("SELECT release, event_count FROM issue_releases WHERE issue_id = $1 ORDER BY first_seen, release")
                .await?;
        let tag_rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT key, value, event_count FROM issue_tags WHERE issue_id = $1 ORDER BY key, event_count DESC, value",
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
             WHERE issue_id = $1 ORDER BY received_at DESC, id DESC LIMIT $2 OFFSET $3",
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
             WHERE {VISIBLE_ORG} AND e.event_id = $3 AND e.issue_id IS NOT NULL ORDER BY e.received_at DESC LIMIT 1"
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
             WHERE i.project_id = $1 AND h.issue_id IN ({ids}) AND h.hour >= $2 ORDER BY h.issue_id, h.hour"
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
            "SELECT environment FROM project_environments WHERE project_id = $1 ORDER BY environment",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable("listing environments"))?;
        let releases: Vec<String> = sqlx::query_scalar(
            "SELECT release FROM project_releases WHERE project_id = $1 ORDER BY first_seen DESC, release LIMIT 200",
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
            "SELECT EXISTS (SELECT 1 FROM issues i JOIN projects p ON p.id = i.project_id WHERE {VISIBLE_ORG} AND i.id = $3)"
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
                sqlx::query(&format!("SELECT {COLUMNS} FROM events WHERE issue_id = $1 AND event_id = $2"))
                    .bind(issue_id)
                    .bind(event_id)
                    .fetch_optional(&self.pool)
                    .await
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM events WHERE issue_id = $1 ORDER BY received_at DESC, id DESC LIMIT 1"
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
            "SELECT event_id FROM events WHERE issue_id = $1 AND (received_at < $2 OR (received_at = $2 AND id < $3)) \
             ORDER BY received_at DESC, id DESC LIMIT 1",
        )
        .await?;
        let newer = neighbour(
            "SELECT event_id FROM events WHERE issue_id = $1 AND (received_at > $2 OR (received_at = $2 AND id > $3)) \
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
impl Triage for PostgresStore {
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
            "SELECT i.project_id FROM issues i JOIN projects p ON p.id = i.project_id WHERE {VISIBLE_ORG} AND i.id = $3"
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
        let mut tx = self.pool.begin().await.map_err(unavailable("starting a transaction"))?;
        let ended = end_expired_ignore_rows(&mut tx, now).await.map_err(unavailable("ending ignores"))?;
        tx.commit().await.map_err(unavailable("committing ended ignores"))?;
        Ok(ended)
    }

    async fn merge_issues(&self, viewer: Viewer, merge: &IssueMerge, at: i64) -> StoreResult<bool> {
        // A merge that loses a deadlock to a batch of another node (whose
        // events were reordered by earlier merges) runs again, like a batch.
        let mut attempt = 1;
        loop {
            let mut tx = self.pool.begin().await.map_err(unavailable("starting a merge"))?;
            let result = match merge_issue_rows(&mut tx, viewer, merge, at).await {
                Ok(MergeOutcome::Merged) => tx.commit().await.map(|()| MergeOutcome::Merged),
                other => other,
            };
            match result {
                Err(e) if attempt < BATCH_ATTEMPTS && is_lost_race(&e) => attempt += 1,
                Err(e) => return Err(unavailable("merging issues")(e)),
                Ok(outcome) => return outcome.answer(merge.target()),
            }
        }
    }

    async fn assign_issue(
        &self,
        viewer: Viewer,
        issue_id: i64,
        assignee: Option<&str>,
        at: i64,
    ) -> StoreResult<Assignment> {
        let mut tx = self.pool.begin().await.map_err(unavailable("starting a transaction"))?;
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
        let mut tx = self.pool.begin().await.map_err(unavailable("starting a transaction"))?;
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
impl Alerting for PostgresStore {
    async fn create_alert_rule(&self, project_id: i64, rule: &NewAlertRule, at: i64) -> StoreResult<AlertRule> {
        let mut tx = self.pool.begin().await.map_err(unavailable("starting a transaction"))?;
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
        let mut tx = self.pool.begin().await.map_err(unavailable("starting a transaction"))?;
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
        let mut tx = self.pool.begin().await.map_err(unavailable("starting a transaction"))?;
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
        let mut tx = self.pool.begin().await.map_err(unavailable("starting a transaction"))?;
        let due = claim_due_deliveries(&mut tx, node, now, lease_ms, limit)
            .await
            .map_err(unavailable("claiming alert deliveries"))?;
        tx.commit().await.map_err(unavailable("committing a claim"))?;
        Ok(due)
    }

    async fn finish_delivery(&self, id: i64, node: &str, now: i64, result: &AttemptResult) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(unavailable("starting a transaction"))?;
        let held =
            finish_delivery_row(&mut tx, id, node, now, result).await.map_err(unavailable("recording a delivery"))?;
        tx.commit().await.map_err(unavailable("committing a delivery"))?;
        Ok(held)
    }

    async fn release_delivery_claims(&self) -> StoreResult<()> {
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
impl DataLifecycle for PostgresStore {
    async fn delete_issue(&self, viewer: Viewer, issue_id: i64) -> StoreResult<bool> {
        let org_id: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT p.org_id FROM issues i JOIN projects p ON p.id = i.project_id WHERE {VISIBLE_ORG} AND i.id = $3"
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
        sqlx::query("DELETE FROM issue_aliases WHERE issue_id = $1")
            .bind(issue_id)
            .execute(&self.pool)
            .await
            .map_err(unavailable("detaching an issue's merged fingerprints"))?;
        sqlx::query("UPDATE issues SET fingerprint = $1 WHERE id = $2")
            .bind(format!("deleted:{issue_id}"))
            .bind(issue_id)
            .execute(&self.pool)
            .await
            .map_err(unavailable("detaching an issue"))?;
        let sql = "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE issue_id = $1 LIMIT $2)";
        self.delete_in_pages(sql, issue_id, "deleting an issue's events").await?;
        sqlx::query("DELETE FROM issues WHERE id = $1")
            .bind(issue_id)
            .execute(&self.pool)
            .await
            .map_err(unavailable("deleting an issue"))?;
        Ok(true)
    }

    async fn delete_project(&self, viewer: Viewer, project_id: i64, at: i64) -> StoreResult<bool> {
        let org_id: Option<i64> =
            sqlx::query_scalar(&format!("SELECT p.org_id FROM projects p WHERE {VISIBLE_ORG} AND p.id = $3"))
                .bind(viewer.is_admin)
                .bind(viewer.user_id)
                .bind(project_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable("looking up a project"))?;
        let Some(org_id) = org_id else { return Ok(false) };
        self.require_org_admin(viewer, org_id, "delete projects").await?;
        sqlx::query("UPDATE project_keys SET revoked_at = $1 WHERE project_id = $2 AND revoked_at IS NULL")
            .bind(at)
            .bind(project_id)
            .execute(&self.pool)
            .await
            .map_err(unavailable("revoking a project's keys"))?;
        for (table, what) in [("events", "deleting a project's events"), ("issues", "deleting a project's issues")] {
            let sql =
                format!("DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE project_id = $1 LIMIT $2)");
            self.delete_in_pages(&sql, project_id, what).await?;
        }
        sqlx::query("DELETE FROM projects WHERE id = $1")
            .bind(project_id)
            .execute(&self.pool)
            .await
            .map_err(unavailable("deleting a project"))?;
        Ok(true)
    }

    async fn export_marks(&self, project_id: i64) -> StoreResult<ExportMarks> {
        let (last_issue_id, last_event_row): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT MAX(id) FROM issues WHERE project_id = $1), \
                    (SELECT MAX(id) FROM events WHERE project_id = $1)",
        )
        .bind(project_id)
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable("reading where an export stops"))?;
        Ok(ExportMarks { last_issue_id: last_issue_id.unwrap_or(0), last_event_row: last_event_row.unwrap_or(0) })
    }

    async fn export_issues(&self, project_id: i64, after: i64, up_to: i64, limit: i64) -> StoreResult<Vec<Issue>> {
        let rows = sqlx::query(&format!(
            "SELECT {ISSUE_COLUMNS} FROM issues i WHERE i.project_id = $1 AND i.id > $2 AND i.id <= $3 \
             ORDER BY i.id LIMIT $4"
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
             WHERE project_id = $1 AND id > $2 AND id <= $3 AND issue_id IS NOT NULL ORDER BY id LIMIT $4",
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
        let mut tx = self.pool.begin().await.map_err(unavailable("starting a transaction"))?;
        let n = evict_in(&mut tx, issue_id, ids).await.map_err(unavailable("evicting events"))?;
        tx.commit().await.map_err(unavailable("committing an eviction"))?;
        Ok(n)
    }

    async fn expire_events(&self, project_id: i64, before: i64, limit: i64) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(unavailable("starting a transaction"))?;
        let events =
            expired_events_in(&mut tx, project_id, before, limit).await.map_err(unavailable("finding old events"))?;
        let n = expire_in(&mut tx, &events, before).await.map_err(unavailable("deleting old events"))?;
        tx.commit().await.map_err(unavailable("committing old events' deletion"))?;
        Ok(n)
    }

    async fn remove_empty_issues(&self, project_id: i64, before: i64, limit: i64) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(unavailable("starting a transaction"))?;
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
        let mut tx = self.pool.begin().await.map_err(unavailable("starting a transaction"))?;
        let n = replace_lightened_in(&mut tx, payloads).await.map_err(unavailable("lightening events"))?;
        tx.commit().await.map_err(unavailable("committing lightened events"))?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::is_lost_race;
    use sqlx::{Connection, PgConnection};

    /// Real errors from a real server: a serialisation failure is a lost
    /// race; an error whose text merely says "deadlock" is not. Runs when
    /// BOOBOO_TEST_DATABASE_URL names a PostgreSQL database.
    #[tokio::test]
    async fn lost_races_are_recognised_by_sqlstate_not_by_text() {
        let Some(url) = std::env::var("BOOBOO_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
            eprintln!("skipped: BOOBOO_TEST_DATABASE_URL is not set");
            return;
        };
        let mut a = PgConnection::connect(&url).await.unwrap();
        let mut b = PgConnection::connect(&url).await.unwrap();
        let table = format!("booboo_race_{}", crate::secrets::new_event_id());
        sqlx::query(&format!("CREATE TABLE {table} (id INT PRIMARY KEY, n INT)")).execute(&mut a).await.unwrap();
        sqlx::query(&format!("INSERT INTO {table} VALUES (1, 0)")).execute(&mut a).await.unwrap();

        for conn in [&mut a, &mut b] {
            sqlx::query("BEGIN ISOLATION LEVEL SERIALIZABLE").execute(&mut *conn).await.unwrap();
            sqlx::query(&format!("SELECT n FROM {table} WHERE id = 1")).execute(&mut *conn).await.unwrap();
        }
        sqlx::query(&format!("UPDATE {table} SET n = 1 WHERE id = 1")).execute(&mut a).await.unwrap();
        sqlx::query("COMMIT").execute(&mut a).await.unwrap();
        let lost = sqlx::query(&format!("UPDATE {table} SET n = 2 WHERE id = 1")).execute(&mut b).await.unwrap_err();
        sqlx::query("ROLLBACK").execute(&mut b).await.unwrap();
        assert!(is_lost_race(&lost), "{lost}");

        let raised = sqlx::query("DO $$ BEGIN RAISE EXCEPTION 'deadlock detected (40P01, 40001)'; END $$")
            .execute(&mut a)
            .await
            .unwrap_err();
        assert!(!is_lost_race(&raised), "{raised}");
        sqlx::query(&format!("DROP TABLE {table}")).execute(&mut a).await.unwrap();
    }
}
