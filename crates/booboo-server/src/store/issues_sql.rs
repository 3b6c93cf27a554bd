//! Reading issues and events ([`super::IssueReads`]): the issue list and
//! search (whose SQL is `search_sql.rs`), an issue's details, its events and
//! charts, written once for both backends like `accounts_sql.rs`.

/// Defines `impl IssueReads` for one backend's store, with
/// `fill_environments_and_releases`, which triage shares: `$conn` is its
/// connection type.
macro_rules! issue_reads_store {
    ($store:ty, $conn:ty) => {
        impl $store {
            /// Fills `environments` and `releases` of a page of issues with two
            /// queries rather than two per issue.
            async fn fill_environments_and_releases(&self, issues: &mut [Issue]) -> StoreResult<()> {
                if issues.is_empty() {
                    return Ok(());
                }
                let ids = id_list(issues);
                for (table, column) in [("issue_environments", "environment"), ("issue_releases", "release")] {
                    let rows: Vec<(i64, String)> = sqlx::query_as(&format!(
                        "SELECT issue_id, {column} \
                         FROM {table} WHERE issue_id IN ({ids}) ORDER BY event_count DESC, {column}"
                    ))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(unavailable("reading environments and releases"))?;
                    attach_names(issues, rows, column == "environment");
                }
                Ok(())
            }
        }

        #[async_trait]
        impl IssueReads for $store {
            async fn list_issues(
                &self,
                viewer: Viewer,
                project_id: i64,
                filter: &IssueFilter,
                page: Page,
            ) -> StoreResult<PageOf<Issue>> {
                let (sql, binds) = issue_list_query(SQL.search, VISIBLE_ORG, filter, page);
                let mut query = sqlx::query(&sql).bind(viewer.is_admin).bind(viewer.user_id).bind(project_id);
                for bind in &binds {
                    query = match bind {
                        Bind::Int(i) => query.bind(*i),
                        Bind::Bytes(b) => query.bind(b.as_slice()),
                        Bind::Text(t) => query.bind(SQL.text(t)),
                    };
                }
                let rows = query.fetch_all(&self.pool).await.map_err(unavailable("listing issues"))?;
                let issues = rows
                    .iter()
                    .map(issue_from_row)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(unavailable("reading issues"))?;
                let mut page = PageOf::from_overfetch(issues, page);
                self.fill_environments_and_releases(&mut page.items).await?;
                Ok(page)
            }

            async fn issue_detail(&self, viewer: Viewer, issue_id: i64) -> StoreResult<Option<IssueDetail>> {
                let row = sqlx::query(&format!(
                    "SELECT {ISSUE_COLUMNS} \
                     FROM issues i JOIN projects p ON p.id = i.project_id WHERE {VISIBLE_ORG} AND i.id = $3"
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
                    "SELECT environment, event_count \
                     FROM issue_environments WHERE issue_id = $1 ORDER BY event_count DESC, environment",
                )
                .await?;
                let releases = counts(
                    "SELECT release, event_count FROM issue_releases WHERE issue_id = $1 ORDER BY first_seen, release",
                )
                .await?;
                let tag_rows: Vec<(String, String, i64)> = sqlx::query_as(
                    "SELECT key, value, event_count \
                     FROM issue_tags WHERE issue_id = $1 ORDER BY key, event_count DESC, value",
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
                let events = rows
                    .iter()
                    .map(event_from_row)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(unavailable("reading events"))?;
                Ok(Some(PageOf::from_overfetch(events, page)))
            }

            async fn event(&self, viewer: Viewer, event_id: &str) -> StoreResult<Option<StoredEvent>> {
                sqlx::query(&format!(
                    "SELECT e.event_id, e.issue_id, e.project_id, e.received_at, e.payload, e.body FROM events e \
                     JOIN projects p ON p.id = e.project_id \
                     WHERE {VISIBLE_ORG} AND e.event_id = $3 AND e.issue_id IS NOT NULL \
                     ORDER BY e.received_at DESC LIMIT 1"
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
                    "SELECT release FROM project_releases \
                     WHERE project_id = $1 ORDER BY first_seen DESC, release LIMIT 200",
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
                    "SELECT EXISTS (SELECT 1 \
                     FROM issues i JOIN projects p ON p.id = i.project_id WHERE {VISIBLE_ORG} AND i.id = $3)"
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
                    None => sqlx::query(&format!(
                        "SELECT {COLUMNS} FROM events WHERE issue_id = $1 ORDER BY received_at DESC, id DESC LIMIT 1"
                    ))
                    .bind(issue_id)
                    .fetch_optional(&self.pool)
                    .await,
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
                    "SELECT event_id FROM events \
                     WHERE issue_id = $1 AND (received_at < $2 OR (received_at = $2 AND id < $3)) \
                     ORDER BY received_at DESC, id DESC LIMIT 1",
                )
                .await?;
                let newer = neighbour(
                    "SELECT event_id FROM events \
                     WHERE issue_id = $1 AND (received_at > $2 OR (received_at = $2 AND id > $3)) \
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
                let (mut hits, (total, total_exact), counts, mut hourly, more) =
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
                    total_exact,
                    counts,
                    hourly,
                })
            }
        }
    };
}

pub(super) use issue_reads_store;
