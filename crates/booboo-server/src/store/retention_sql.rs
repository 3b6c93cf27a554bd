//! The retention queries, written once for both backends: a macro expanded
//! in `sqlite.rs` and `postgres.rs` (as `alert_sql.rs` is), because sqlx's
//! connection and row types differ per backend while the SQL does not. Each
//! backend defines `q` (its placeholders) and `LOCK_ISSUES` (PostgreSQL's
//! `FOR UPDATE`; SQLite's write lock already serialises writers).
//!
//! Every write here is one short transaction over at most a page of rows,
//! so the ingest writer waits for a page at most. Deletes say which rows
//! they removed (`RETURNING`, or the count of one statement), and the
//! counters grow by exactly that, so two nodes running retention at once
//! never count an eviction twice: the second finds the rows gone.

/// SQLite: the bytes of pages in use (free pages are reused by new rows and
/// returned to the file system by `incremental_vacuum`).
pub(super) const SQLITE_USED_BYTES: &str = "SELECT (pc.page_count - fc.freelist_count) * ps.page_size \
     FROM pragma_page_count() pc, pragma_freelist_count() fc, pragma_page_size() ps";

/// PostgreSQL: the database less the events table's files, plus the live
/// events' rows. A deleted row's space stays in the table's files for reuse
/// (autovacuum), so the files alone would never shrink below the budget.
/// It reads every event row's size: a full scan, run only with a budget set.
pub(super) const POSTGRES_USED_BYTES: &str = "SELECT (pg_database_size(current_database()) \
     - pg_total_relation_size('events') \
     + (SELECT COALESCE(SUM(pg_column_size(e.*)), 0) FROM events e))::BIGINT";

/// Defines the retention functions for one backend: `$conn` is its
/// connection type.
macro_rules! retention_queries {
    ($conn:ty) => {
        use super::EventAge;

        /// Integers this code produced, as a SQL list.
        fn integer_list(ids: &[i64]) -> String {
            ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
        }

        async fn stored_per_project_in(conn: &mut $conn) -> Result<Vec<(i64, i64)>, sqlx::Error> {
            sqlx::query_as("SELECT project_id, COUNT(*) FROM events GROUP BY project_id ORDER BY project_id")
                .fetch_all(&mut *conn)
                .await
        }

        async fn stored_per_issue_in(conn: &mut $conn, project_id: i64) -> Result<Vec<(i64, i64, i64)>, sqlx::Error> {
            sqlx::query_as(&q("SELECT issue_id, COUNT(*), SUM(CASE WHEN kept THEN 0 ELSE 1 END) FROM events WHERE project_id = ? AND issue_id IS NOT NULL \
                 GROUP BY issue_id ORDER BY issue_id"))
            .bind(project_id)
            .fetch_all(&mut *conn)
            .await
        }

        async fn issue_event_ages_in(conn: &mut $conn, issue_id: i64) -> Result<Vec<EventAge>, sqlx::Error> {
            let rows: Vec<(i64, i64, bool)> =
                sqlx::query_as(&q("SELECT id, received_at, kept FROM events WHERE issue_id = ? ORDER BY received_at, id"))
                    .bind(issue_id)
                    .fetch_all(&mut *conn)
                    .await?;
            Ok(rows.into_iter().map(|(id, received_at, kept)| EventAge { id, received_at, kept }).collect())
        }

        /// Deletes those of `ids` that belong to the issue and are neither
        /// kept nor its latest event, and counts them on the issue. The
        /// caller's transaction commits.
        async fn evict_in(conn: &mut $conn, issue_id: i64, ids: &[i64]) -> Result<u64, sqlx::Error> {
            if ids.is_empty() {
                return Ok(0);
            }
            // The issue's row first, as ingest takes it, so the two never
            // wait for each other in opposite orders.
            let locked: Option<i64> = sqlx::query_scalar(&q(&format!("SELECT id FROM issues WHERE id = ?{LOCK_ISSUES}")))
                .bind(issue_id)
                .fetch_optional(&mut *conn)
                .await?;
            if locked.is_none() {
                return Ok(0);
            }
            let latest: Option<i64> = sqlx::query_scalar(&q(
                "SELECT id FROM events WHERE issue_id = ? ORDER BY received_at DESC, id DESC LIMIT 1",
            ))
            .bind(issue_id)
            .fetch_optional(&mut *conn)
            .await?;
            let deleted = sqlx::query(&q(&format!(
                "DELETE FROM events WHERE issue_id = ? AND id <> ? AND NOT kept AND id IN ({})",
                integer_list(ids)
            )))
            .bind(issue_id)
            .bind(latest.unwrap_or(0))
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if deleted > 0 {
                sqlx::query(&q("UPDATE issues SET not_stored_retention = not_stored_retention + ? WHERE id = ?"))
                    .bind(deleted as i64)
                    .bind(issue_id)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(deleted)
        }

        /// The oldest events of a project received before `before`, at most
        /// `limit`, as (event row, issue).
        async fn expired_events_in(
            conn: &mut $conn,
            project_id: i64,
            before: i64,
            limit: i64,
        ) -> Result<Vec<(i64, i64)>, sqlx::Error> {
            sqlx::query_as(&q("SELECT id, issue_id FROM events WHERE project_id = ? AND received_at < ? \
                 AND issue_id IS NOT NULL ORDER BY received_at LIMIT ?"))
            .bind(project_id)
            .bind(before)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await
        }

        /// Deletes the given events (found by `expired_events_in`) if they
        /// are still older than `before`, and counts them on their issues.
        async fn expire_in(conn: &mut $conn, events: &[(i64, i64)], before: i64) -> Result<u64, sqlx::Error> {
            if events.is_empty() {
                return Ok(0);
            }
            let mut issues: Vec<i64> = events.iter().map(|(_, issue)| *issue).collect();
            issues.sort_unstable();
            issues.dedup();
            // Issue rows in ingest's order (its batches go by fingerprint).
            let _: Vec<i64> = sqlx::query_scalar(&format!(
                "SELECT id FROM issues WHERE id IN ({}) ORDER BY project_id, fingerprint{LOCK_ISSUES}",
                integer_list(&issues)
            ))
            .fetch_all(&mut *conn)
            .await?;
            let ids: Vec<i64> = events.iter().map(|(id, _)| *id).collect();
            let gone: Vec<i64> = sqlx::query_scalar(&q(&format!(
                "DELETE FROM events WHERE id IN ({}) AND received_at < ? RETURNING issue_id",
                integer_list(&ids)
            )))
            .bind(before)
            .fetch_all(&mut *conn)
            .await?;
            let mut per_issue: std::collections::BTreeMap<i64, i64> = std::collections::BTreeMap::new();
            for issue in &gone {
                *per_issue.entry(*issue).or_default() += 1;
            }
            for (issue, n) in per_issue {
                sqlx::query(&q("UPDATE issues SET not_stored_retention = not_stored_retention + ? WHERE id = ?"))
                    .bind(n)
                    .bind(issue)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(gone.len() as u64)
        }

        /// Removes issues of a project last seen before `before` that have
        /// no stored event left, at most `limit`.
        async fn remove_empty_issues_in(
            conn: &mut $conn,
            project_id: i64,
            before: i64,
            limit: i64,
        ) -> Result<u64, sqlx::Error> {
            Ok(sqlx::query(&q("DELETE FROM issues WHERE id IN (SELECT i.id FROM issues i WHERE i.project_id = ? \
                 AND i.last_seen < ? AND NOT EXISTS (SELECT 1 FROM events e WHERE e.issue_id = i.id) LIMIT ?) \
                 AND last_seen < ?"))
            .bind(project_id)
            .bind(before)
            .bind(limit)
            .bind(before)
            .execute(&mut *conn)
            .await?
            .rows_affected())
        }

        /// Takes or renews the one retention lease until `until`; whether
        /// this node holds it now.
        async fn take_retention_lease_in(conn: &mut $conn, node: &str, now: i64, until: i64) -> Result<bool, sqlx::Error> {
            Ok(sqlx::query(&q("UPDATE retention_lease SET holder = ?, until = ? WHERE id = 1 AND (holder = ? OR until <= ?)"))
                .bind(node)
                .bind(until)
                .bind(node)
                .bind(now)
                .execute(&mut *conn)
                .await?
                .rows_affected()
                == 1)
        }

        async fn events_to_lighten_in(
            conn: &mut $conn,
            before: i64,
            limit: i64,
        ) -> Result<Vec<(i64, String)>, sqlx::Error> {
            let rows: Vec<(i64, String, Option<Vec<u8>>)> = sqlx::query_as(&q(
                "SELECT id, payload, body FROM events WHERE NOT lightened AND received_at < ? ORDER BY received_at LIMIT ?",
            ))
            .bind(before)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?;
            rows.into_iter().map(|(id, payload, body)| Ok((id, super::stored_payload::read(payload, body)?))).collect()
        }

        /// Writes lightened payloads, each once: a row another node already
        /// lightened is left alone.
        async fn replace_lightened_in(conn: &mut $conn, payloads: &[(i64, String)]) -> Result<u64, sqlx::Error> {
            let mut done = 0;
            for (id, payload) in payloads {
                let body = super::stored_payload::compress(payload);
                done += sqlx::query(&q(
                    "UPDATE events SET payload = ?, body = ?, lightened = ? WHERE id = ? AND NOT lightened",
                ))
                .bind(if body.is_some() { "" } else { payload.as_str() })
                .bind(body)
                .bind(true)
                    .bind(id)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
            }
            Ok(done)
        }
    };
}

pub(super) use retention_queries;
