//! Merging issues, written once for both backends: a macro expanded in
//! `sqlite.rs` and `postgres.rs` (like `alert_sql.rs`), because sqlx's
//! connection types differ per backend while the SQL does not. Each backend
//! brings `q` (its placeholders), `VISIBLE_ORG` (the access rule) and the row
//! lock a merge takes (`FOR UPDATE` on PostgreSQL; SQLite's one writer needs
//! none).
//!
//! A merge moves everything of the merged issues onto the one kept: counts,
//! users, first and last seen, environments, releases, tags, hourly history,
//! events, alert history. Each merged fingerprint is kept in `issue_aliases`,
//! pointing at the kept issue, and ingest looks it up before its upsert, so
//! later events of either fingerprint land in the kept issue.

/// Defines the merge functions for one backend: `$conn` is its connection
/// type, `$lock` the clause that locks the issue rows a merge reads.
macro_rules! merge_queries {
    ($conn:ty, $lock:expr) => {
        use super::merge_sql::MergeOutcome;

        /// The fingerprint an event is counted under: `None` for its own, or
        /// that of the issue its fingerprint was merged into.
        async fn merged_fingerprint(
            conn: &mut $conn,
            project_id: i64,
            fingerprint: &str,
        ) -> Result<Option<String>, sqlx::Error> {
            sqlx::query_scalar(&q("SELECT i.fingerprint FROM issue_aliases a JOIN issues i ON i.id = a.issue_id \
                 WHERE a.project_id = ? AND a.fingerprint = ?"))
            .bind(project_id)
            .bind(fingerprint)
            .fetch_optional(conn)
            .await
        }

        /// After an event created a new issue: whether its fingerprint was
        /// merged meanwhile. On PostgreSQL a merge can commit while this
        /// upsert waits for the merged issue's row; the upsert then finds that
        /// row gone and creates a new issue. Then the new row (this
        /// transaction's own, not yet seen by anyone) is removed again and the
        /// fingerprint to count the event under is returned.
        async fn merged_meanwhile(
            conn: &mut $conn,
            project_id: i64,
            fingerprint: &str,
            new_issue_id: i64,
        ) -> Result<Option<String>, sqlx::Error> {
            let Some(target) = merged_fingerprint(&mut *conn, project_id, fingerprint).await? else {
                return Ok(None);
            };
            sqlx::query(&q("DELETE FROM issues WHERE id = ?")).bind(new_issue_id).execute(&mut *conn).await?;
            Ok(Some(target))
        }

        /// Merges inside the caller's transaction; see [`Triage::merge_issues`].
        async fn merge_issue_rows(
            conn: &mut $conn,
            viewer: Viewer,
            merge: &IssueMerge,
            at: i64,
        ) -> Result<MergeOutcome, sqlx::Error> {
            let ids = std::iter::once(merge.target())
                .chain(merge.sources().iter().copied())
                .map(|id| id.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let visible: Vec<i64> = sqlx::query_scalar(&format!(
                "SELECT i.id FROM issues i JOIN projects p ON p.id = i.project_id WHERE {VISIBLE_ORG} AND i.id IN ({ids})"
            ))
            .bind(viewer.is_admin)
            .bind(viewer.user_id)
            .fetch_all(&mut *conn)
            .await?;
            if !visible.contains(&merge.target()) {
                return Ok(MergeOutcome::TargetNotFound);
            }
            if let Some(missing) = merge.sources().iter().find(|id| !visible.contains(id)) {
                return Ok(MergeOutcome::SourceNotFound(*missing));
            }

            // The rows are locked in the order ingest locks them (project,
            // then fingerprint), so a merge and a batch do not deadlock over
            // them. Everything below reads them after the lock: an event
            // committed before is moved with its issue, one after waits.
            type MergeRow = (i64, i64, String, i64, i64, i64, i64, i64, i64, Option<String>, Option<i64>);
            let rows: Vec<MergeRow> = sqlx::query_as(&format!(
                "SELECT id, project_id, fingerprint, first_seen, last_seen, event_count, user_count, \
                   not_stored_rate_limit, not_stored_retention, first_release, assignee_id \
                 FROM issues WHERE id IN ({ids}) ORDER BY project_id, fingerprint{}",
                $lock
            ))
            .fetch_all(&mut *conn)
            .await?;
            let Some(kept) = rows.iter().find(|r| r.0 == merge.target()).cloned() else {
                return Ok(MergeOutcome::TargetNotFound);
            };
            if let Some(missing) = merge.sources().iter().find(|id| !rows.iter().any(|r| r.0 == **id)) {
                return Ok(MergeOutcome::SourceNotFound(*missing));
            }
            if let Some(other) = rows.iter().find(|r| r.1 != kept.1) {
                return Ok(MergeOutcome::OtherProject(other.0));
            }

            let merged: Vec<&MergeRow> = rows.iter().filter(|r| r.0 != kept.0).collect();
            let first_seen = rows.iter().map(|r| r.3).min().unwrap_or(kept.3);
            let last_seen = rows.iter().map(|r| r.4).max().unwrap_or(kept.4);
            let added_events: i64 = merged.iter().map(|r| r.5).sum();
            let not_stored_rate_limit: i64 = rows.iter().map(|r| r.7).sum();
            let not_stored_retention: i64 = rows.iter().map(|r| r.8).sum();
            // The first release is the one the earliest event came with.
            let first_release = rows
                .iter()
                .filter(|r| r.9.is_some())
                .min_by_key(|r| (r.3, r.0))
                .and_then(|r| r.9.clone());
            let assignee = kept.10.or_else(|| merged.iter().find_map(|r| r.10));

            for source in &merged {
                let (from, fingerprint) = (source.0, &source.2);
                for sql in [
                    "INSERT INTO issue_users (issue_id, user_key) SELECT ?, user_key FROM issue_users \
                     WHERE issue_id = ? ON CONFLICT DO NOTHING",
                    "INSERT INTO issue_environment_users (issue_id, environment, user_key) \
                     SELECT ?, environment, user_key FROM issue_environment_users WHERE issue_id = ? \
                     ON CONFLICT DO NOTHING",
                    "INSERT INTO issue_environments (issue_id, environment, event_count) \
                     SELECT ?, environment, event_count FROM issue_environments WHERE issue_id = ? \
                     ON CONFLICT (issue_id, environment) DO UPDATE \
                     SET event_count = issue_environments.event_count + excluded.event_count",
                    "INSERT INTO issue_releases (issue_id, release, event_count, first_seen) \
                     SELECT ?, release, event_count, first_seen FROM issue_releases WHERE issue_id = ? \
                     ON CONFLICT (issue_id, release) DO UPDATE \
                     SET event_count = issue_releases.event_count + excluded.event_count, \
                     first_seen = CASE WHEN excluded.first_seen < issue_releases.first_seen \
                       THEN excluded.first_seen ELSE issue_releases.first_seen END",
                    "INSERT INTO issue_tags (issue_id, key, value, event_count) \
                     SELECT ?, key, value, event_count FROM issue_tags WHERE issue_id = ? \
                     ON CONFLICT (issue_id, key, value) DO UPDATE \
                     SET event_count = issue_tags.event_count + excluded.event_count",
                    "INSERT INTO issue_hourly (issue_id, hour, event_count) \
                     SELECT ?, hour, event_count FROM issue_hourly WHERE issue_id = ? \
                     ON CONFLICT (issue_id, hour) DO UPDATE \
                     SET event_count = issue_hourly.event_count + excluded.event_count",
                    // A rule's throttle continues from the latest firing of either.
                    "INSERT INTO alert_throttle (issue_id, rule_id, last_fired_at) \
                     SELECT ?, rule_id, last_fired_at FROM alert_throttle WHERE issue_id = ? \
                     ON CONFLICT (rule_id, issue_id) DO UPDATE \
                     SET last_fired_at = CASE WHEN excluded.last_fired_at > alert_throttle.last_fired_at \
                       THEN excluded.last_fired_at ELSE alert_throttle.last_fired_at END",
                    "UPDATE alert_deliveries SET issue_id = ? WHERE issue_id = ?",
                    "UPDATE events SET issue_id = ? WHERE issue_id = ?",
                    // Fingerprints merged into the merged issue earlier follow it.
                    "UPDATE issue_aliases SET issue_id = ? WHERE issue_id = ?",
                ] {
                    sqlx::query(&q(sql)).bind(kept.0).bind(from).execute(&mut *conn).await?;
                }
                sqlx::query(&q(
                    "INSERT INTO issue_aliases (project_id, fingerprint, issue_id, merged_issue_id, merged_at) \
                     VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id, fingerprint) DO UPDATE \
                     SET issue_id = excluded.issue_id, merged_issue_id = excluded.merged_issue_id, \
                     merged_at = excluded.merged_at",
                ))
                .bind(kept.1)
                .bind(fingerprint)
                .bind(kept.0)
                .bind(from)
                .bind(at)
                .execute(&mut *conn)
                .await?;
                // Its rows in the tables above were copied; the rest go with it.
                sqlx::query(&q("DELETE FROM issues WHERE id = ?")).bind(from).execute(&mut *conn).await?;
            }

            // A user seen in one environment by both issues is one user there.
            sqlx::query(&q("UPDATE issue_environments SET user_count = (SELECT COUNT(*) \
                   FROM issue_environment_users u WHERE u.issue_id = issue_environments.issue_id \
                   AND u.environment = issue_environments.environment) WHERE issue_id = ?"))
            .bind(kept.0)
            .execute(&mut *conn)
            .await?;
            let users: i64 = sqlx::query_scalar(&q("SELECT COUNT(*) FROM issue_users WHERE issue_id = ?"))
                .bind(kept.0)
                .fetch_one(&mut *conn)
                .await?;
            // An ignore "until N more events (users)" keeps waiting for N more
            // than the issue had: the merged issue's events are not new ones.
            sqlx::query(&q("UPDATE issues SET first_seen = ?, last_seen = ?, event_count = ?, user_count = ?, \
                   not_stored_rate_limit = ?, not_stored_retention = ?, first_release = ?, assignee_id = ?, \
                   ignore_until_count = ignore_until_count + ?, ignore_until_users = ignore_until_users + ? \
                 WHERE id = ?"))
            .bind(first_seen)
            .bind(last_seen)
            .bind(kept.5 + added_events)
            .bind(users)
            .bind(not_stored_rate_limit)
            .bind(not_stored_retention)
            .bind(first_release)
            .bind(assignee)
            .bind(added_events)
            .bind(users - kept.6)
            .bind(kept.0)
            .execute(&mut *conn)
            .await?;
            Ok(MergeOutcome::Merged)
        }

        /// The issue a merged issue's id now leads to, if the viewer can see it.
        async fn merged_issue_target(conn: &mut $conn, viewer: Viewer, issue_id: i64) -> Result<Option<i64>, sqlx::Error> {
            sqlx::query_scalar(&format!(
                "SELECT a.issue_id FROM issue_aliases a JOIN projects p ON p.id = a.project_id \
                 WHERE {VISIBLE_ORG} AND a.merged_issue_id = {issue_id} LIMIT 1"
            ))
            .bind(viewer.is_admin)
            .bind(viewer.user_id)
            .fetch_optional(conn)
            .await
        }
    };
}

pub(super) use merge_queries;

/// What a merge found, before it is turned into an answer.
pub(super) enum MergeOutcome {
    Merged,
    TargetNotFound,
    SourceNotFound(i64),
    OtherProject(i64),
}

impl MergeOutcome {
    /// `Ok(true)` merged, `Ok(false)` the target is not visible, else the
    /// error that says which issue is wrong.
    pub(super) fn answer(self, target: i64) -> super::StoreResult<bool> {
        use super::StoreError;
        match self {
            MergeOutcome::Merged => Ok(true),
            MergeOutcome::TargetNotFound => Ok(false),
            MergeOutcome::SourceNotFound(id) => Err(StoreError::NotFound(format!("issue {id} not found"))),
            MergeOutcome::OtherProject(id) => Err(StoreError::Conflict(format!(
                "issue {id} belongs to another project than issue {target}; only issues of one project can be merged"
            ))),
        }
    }
}
