//! Changing an issue ([`super::Triage`]): its status (resolve, ignore,
//! reopen), assignee, comments and activity, and merging issues, written once
//! for both backends like `accounts_sql.rs`; the queries of resolving, merging
//! and activity are `resolve_sql.rs`, `merge_sql.rs` and `activity_sql.rs`.

/// Defines `impl Triage` for one backend's store, with `change_issue_status`:
/// `$conn` is its connection type.
macro_rules! triage_store {
    ($store:ty, $conn:ty) => {
        impl $store {
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
                let prior: Option<String> =
                    sqlx::query_scalar(&format!("SELECT status FROM issues WHERE id = $1{}", SQL.for_update))
                        .bind(issue_id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(unavailable("reading an issue's status"))?;
                let row = sqlx::query(&format!(
                    "UPDATE issues SET status = $4, is_regression = CASE WHEN $4 = 'ignored' \
                     THEN is_regression ELSE FALSE END, \
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
        }

        #[async_trait]
        impl Triage for $store {
            async fn set_issue_status(
                &self,
                viewer: Viewer,
                issue_id: i64,
                status: IssueStatus,
            ) -> StoreResult<Option<Issue>> {
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
                    "SELECT i.project_id FROM issues i JOIN projects p ON p.id = i.project_id \
                     WHERE {VISIBLE_ORG} AND i.id = $3"
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
                    project_releases_seen(&mut conn, project_id)
                        .await
                        .map_err(unavailable("reading a project's releases"))?
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
                // On PostgreSQL a merge that loses a deadlock to a batch of
                // another node (whose events were reordered by earlier merges)
                // runs again, like a batch; SQLite's one writer never loses one.
                let mut attempt = 1;
                loop {
                    let mut tx = self.begin_write().await?;
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
                let comment = add_comment_row(&mut tx, viewer, issue_id, text, at)
                    .await
                    .map_err(unavailable("adding a comment"))?;
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
                if visible_issue_org(&mut conn, viewer, issue_id)
                    .await
                    .map_err(unavailable("looking up an issue"))?
                    .is_none()
                {
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
    };
}

pub(super) use triage_store;
