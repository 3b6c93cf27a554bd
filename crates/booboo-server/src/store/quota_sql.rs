//! The quota queries, written once for both backends: a macro expanded in
//! `sqlite.rs` and `postgres.rs` (sqlx's connection types differ, the SQL
//! does not; each backend's `q` numbers the `?` placeholders). They run
//! inside the batch's transaction: the windows of the batch's projects are
//! locked (an upsert takes the row lock on PostgreSQL; SQLite's writer holds
//! the whole database) before any issue row, in project order, so batches on
//! several nodes charge one shared count and never deadlock on it. The rule
//! itself is `quota.rs`.

macro_rules! quota_queries {
    ($conn:ty) => {
        use super::quota::{self as quota, BatchQuotas, ProjectQuota, RateLimit};

        const RATE_LIMIT_KIND: &str = "rate_limit";
        const SPIKE_GUARD_KIND: &str = "spike_guard";

        /// Reads and locks the quota windows a batch is held to: the
        /// installation's (`installation`, all projects together) first, then
        /// those of the batch's projects with a rate limit or spike guard of
        /// their own, in project order. Projects without one cost one read of
        /// their row.
        async fn quotas_for_batch(
            conn: &mut $conn,
            batch: &[NewEvent],
            installation: Option<RateLimit>,
        ) -> Result<BatchQuotas, sqlx::Error> {
            // The earliest receive time per project places its windows.
            let mut first_at: std::collections::BTreeMap<i64, i64> = std::collections::BTreeMap::new();
            for e in batch {
                let at = first_at.entry(e.project_id).or_insert(e.received_at);
                *at = (*at).min(e.received_at);
            }
            let mut quotas = BatchQuotas::default();
            let Some(&batch_at) = first_at.values().min() else {
                return Ok(quotas);
            };
            if let Some(limit) = installation {
                let (started_at, stored): (i64, i64) = sqlx::query_as(&q(
                    "INSERT INTO installation_quota_windows (kind, window_start, stored, cap) VALUES (?, ?, 0, ?) \
                     ON CONFLICT (kind) DO UPDATE SET kind = excluded.kind RETURNING window_start, stored",
                ))
                .bind(RATE_LIMIT_KIND)
                .bind(batch_at)
                .bind(limit.count)
                .fetch_one(&mut *conn)
                .await?;
                quotas.installation = Some((limit, quota::Window { started_at, stored, cap: limit.count }));
            }
            let list = first_at.keys().map(i64::to_string).collect::<Vec<_>>().join(",");
            let rows: Vec<(i64, Option<i64>, Option<i64>, bool)> = sqlx::query_as(&format!(
                "SELECT id, rate_limit_count, rate_limit_seconds, spike_guard FROM projects WHERE id IN ({list}) ORDER BY id"
            ))
            .fetch_all(&mut *conn)
            .await?;
            for (project_id, count, seconds, spike_guard) in rows {
                let rate = quota::rate_limit_from_columns(count, seconds);
                if rate.is_none() && !spike_guard {
                    continue;
                }
                let at = first_at[&project_id];
                let rate = match rate {
                    Some(limit) => {
                        let window = lock_window(conn, project_id, RATE_LIMIT_KIND, at, limit.count).await?;
                        Some((limit, window))
                    }
                    None => None,
                };
                let spike = if spike_guard {
                    let mut window = lock_window(conn, project_id, SPIKE_GUARD_KIND, at, 0).await?;
                    let hour_start = quota::window_start(at, quota::HOUR_MS);
                    if window.started_at < hour_start || window.cap == 0 {
                        // The first batch of an hour sets the hour's cap.
                        let (from, to) = quota::spike_history_hours(at);
                        let recent: i64 = sqlx::query_scalar(&q(
                            "SELECT CAST(COALESCE(SUM(h.event_count), 0) AS BIGINT) FROM issue_hourly h \
                             JOIN issues i ON i.id = h.issue_id WHERE i.project_id = ? AND h.hour >= ? AND h.hour < ?",
                        ))
                        .bind(project_id)
                        .bind(from)
                        .bind(to)
                        .fetch_one(&mut *conn)
                        .await?;
                        window = quota::Window { started_at: hour_start, stored: 0, cap: quota::spike_cap(recent) };
                    }
                    Some(window)
                } else {
                    None
                };
                quotas.projects.insert(project_id, ProjectQuota { rate, spike });
            }
            Ok(quotas)
        }

        /// A project's window of one kind, created if new, locked until the
        /// transaction ends (`DO UPDATE` takes the row lock even when it
        /// changes nothing).
        async fn lock_window(
            conn: &mut $conn,
            project_id: i64,
            kind: &str,
            at: i64,
            cap: i64,
        ) -> Result<quota::Window, sqlx::Error> {
            let (started_at, stored, cap): (i64, i64, i64) = sqlx::query_as(&q(
                "INSERT INTO quota_windows (project_id, kind, window_start, stored, cap) VALUES (?, ?, ?, 0, ?) \
                 ON CONFLICT (project_id, kind) DO UPDATE SET kind = excluded.kind \
                 RETURNING window_start, stored, cap",
            ))
            .bind(project_id)
            .bind(kind)
            .bind(at)
            .bind(cap)
            .fetch_one(&mut *conn)
            .await?;
            Ok(quota::Window { started_at, stored, cap })
        }

        /// Writes the windows back, in the order they were locked, before the commit.
        async fn save_quotas(conn: &mut $conn, quotas: &BatchQuotas) -> Result<(), sqlx::Error> {
            if let Some((_, window)) = quotas.installation {
                sqlx::query(&q(
                    "UPDATE installation_quota_windows SET window_start = ?, stored = ?, cap = ? WHERE kind = ?",
                ))
                .bind(window.started_at)
                .bind(window.stored)
                .bind(window.cap)
                .bind(RATE_LIMIT_KIND)
                .execute(&mut *conn)
                .await?;
            }
            for (project_id, quota) in &quotas.projects {
                let windows = [
                    quota.rate.map(|(_, w)| (RATE_LIMIT_KIND, w)),
                    quota.spike.map(|w| (SPIKE_GUARD_KIND, w)),
                ];
                for (kind, window) in windows.into_iter().flatten() {
                    sqlx::query(&q(
                        "UPDATE quota_windows SET window_start = ?, stored = ?, cap = ? WHERE project_id = ? AND kind = ?",
                    ))
                    .bind(window.started_at)
                    .bind(window.stored)
                    .bind(window.cap)
                    .bind(*project_id)
                    .bind(kind)
                    .execute(&mut *conn)
                    .await?;
                }
            }
            Ok(())
        }

        /// Counts the events of a batch whose payloads were not stored on
        /// their issues: one statement per issue, in issue order.
        async fn count_not_stored(
            conn: &mut $conn,
            per_issue: &std::collections::BTreeMap<i64, i64>,
        ) -> Result<(), sqlx::Error> {
            for (issue_id, n) in per_issue {
                sqlx::query(&q("UPDATE issues SET not_stored_rate_limit = not_stored_rate_limit + ? WHERE id = ?"))
                    .bind(*n)
                    .bind(*issue_id)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        }
    };
}

pub(super) use quota_queries;
