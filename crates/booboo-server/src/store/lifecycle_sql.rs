//! Data leaving the store ([`super::DataLifecycle`]): deleting issues and
//! projects, exporting a project, and retention's reads and writes (whose
//! queries are `retention_sql.rs`), written once for both backends like
//! `accounts_sql.rs`.

/// Defines `impl DataLifecycle` for one backend's store, with
/// `delete_in_pages`: `$conn` is its connection type.
macro_rules! lifecycle_store {
    ($store:ty, $conn:ty) => {
        impl $store {
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
        }

        #[async_trait]
        impl DataLifecycle for $store {
            async fn delete_issue(&self, viewer: Viewer, issue_id: i64) -> StoreResult<bool> {
                let org_id: Option<i64> = sqlx::query_scalar(&format!(
                    "SELECT p.org_id FROM issues i JOIN projects p ON p.id = i.project_id \
                     WHERE {VISIBLE_ORG} AND i.id = $3"
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
                let org_id = self.visible_project_org(viewer, project_id).await?;
                let Some(org_id) = org_id else { return Ok(false) };
                self.require_org_admin(viewer, org_id, "delete projects").await?;
                sqlx::query("UPDATE project_keys SET revoked_at = $1 WHERE project_id = $2 AND revoked_at IS NULL")
                    .bind(at)
                    .bind(project_id)
                    .execute(&self.pool)
                    .await
                    .map_err(unavailable("revoking a project's keys"))?;
                for (table, what) in
                    [("events", "deleting a project's events"), ("issues", "deleting a project's issues")]
                {
                    let sql = format!(
                        "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE project_id = $1 LIMIT $2)"
                    );
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
                Ok(ExportMarks {
                    last_issue_id: last_issue_id.unwrap_or(0),
                    last_event_row: last_event_row.unwrap_or(0),
                })
            }

            async fn export_issues(
                &self,
                project_id: i64,
                after: i64,
                up_to: i64,
                limit: i64,
            ) -> StoreResult<Vec<Issue>> {
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
                let mut issues = rows
                    .iter()
                    .map(issue_from_row)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(unavailable("reading issues"))?;
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
                take_retention_lease_in(&mut conn, node, now, until)
                    .await
                    .map_err(unavailable("taking the retention lease"))
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
                let events = expired_events_in(&mut tx, project_id, before, limit)
                    .await
                    .map_err(unavailable("finding old events"))?;
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
    };
}

pub(super) use lifecycle_store;
