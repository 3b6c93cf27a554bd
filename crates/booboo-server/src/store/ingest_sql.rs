//! The ingest path ([`super::Ingest`]): a token's project, the handshake,
//! and storing one event of a batch (`store_one`: quotas, the event row, the
//! issue upsert, regressions, alert rules, users, ended ignores), written
//! once for both backends like `accounts_sql.rs`. How a batch's transaction
//! runs stays with each backend (`store_batch`): SQLite stores events in
//! the order they came under its one write lock; PostgreSQL sorts them so
//! nodes take row locks in the same order, and runs a batch again when it
//! loses a deadlock to another node.

/// Defines `store_one` and `impl Ingest` for one backend's store: `$conn` is
/// its connection type.
macro_rules! ingest_store {
    ($store:ty, $conn:ty) => {
        /// Stores one event inside the batch's transaction.
        async fn store_one(
            conn: &mut $conn,
            e: &NewEvent,
            rules: &[AlertRule],
            quotas: &mut BatchQuotas,
            counters: &mut BatchCounters,
        ) -> Result<StoreOutcome, sqlx::Error> {
            let event = &e.processed.event;
            // Over its quota an event is counted like any other; only its payload
            // (the events row) is not stored.
            let not_stored = quotas.charge(e.project_id, e.received_at).err();
            if not_stored.is_some() && event_already_stored(conn, e.project_id, &event.event_id).await? {
                return Ok(StoreOutcome::Duplicate);
            }
            let inserted: Option<i64> = if not_stored.is_some() {
                None
            } else {
                sqlx::query_scalar(
                    "INSERT INTO events (project_id, event_id, received_at, occurred_at, environment, release, level, \
                     user_key, payload, body, tags, user_email, tag_hashes) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                     ON CONFLICT (project_id, event_id) DO NOTHING RETURNING id",
                )
                .bind(e.project_id)
                .bind(&event.event_id)
                .bind(e.received_at)
                .bind(e.occurred_at)
                .bind(SQL.text(&event.environment))
                .bind(SQL.text(&event.release))
                .bind(event.level.as_str())
                .bind(e.processed.user_key.as_deref().map(|t| SQL.text(t)))
                .bind(if e.body.is_some() { "" } else { e.payload.as_str() })
                .bind(e.body.as_deref())
                .bind(&e.tags)
                .bind(e.user_email.as_deref().map(|t| SQL.text(t)))
                .bind(e.tag_hashes.as_deref())
                .fetch_optional(&mut *conn)
                .await?
            };
            if inserted.is_none() && not_stored.is_none() {
                quotas.refund(e.project_id);
                return Ok(StoreOutcome::Duplicate);
            }

            // Alert rules need to know whether the issue was resolved before this
            // event: nothing changes it in between (SQLite: the write lock is held;
            // PostgreSQL: the row is locked from here to the commit, as the upsert
            // below would lock it anyway, in the same order).
            // A fingerprint merged into another issue is counted on that issue.
            let mut fingerprint = merged_fingerprint(conn, e.project_id, &e.processed.fingerprint.fingerprint)
                .await?
                .unwrap_or_else(|| e.processed.fingerprint.fingerprint.clone());
            // Each backend's two statements of the hot path, formatted once.
            static PRIOR_STATUS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                format!("SELECT status FROM issues WHERE project_id = $1 AND fingerprint = $2{}", SQL.for_update)
            });
            static UPSERT_ISSUE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                format!(
                    "INSERT INTO issues (project_id, fingerprint, title, culprit, level, status, first_seen, last_seen, \
                     event_count, first_release) \
                     VALUES ($1, $2, $3, $4, $5, 'unresolved', $6, $6, 1, NULLIF($7, '')) \
                     ON CONFLICT (project_id, fingerprint) DO UPDATE SET \
                       title = excluded.title, culprit = excluded.culprit, level = excluded.level, \
                       first_seen = {least}(issues.first_seen, excluded.first_seen), \
                       last_seen = {greatest}(issues.last_seen, excluded.last_seen), \
                       event_count = issues.event_count + 1, \
                       first_release = COALESCE(issues.first_release, excluded.first_release), \
                       is_regression = CASE WHEN issues.status = 'resolved' AND issues.resolved_kind IS NULL \
                         THEN TRUE ELSE issues.is_regression END, \
                       status = CASE WHEN issues.status = 'resolved' AND issues.resolved_kind IS NULL \
                         THEN 'unresolved' ELSE issues.status END \
                     RETURNING id, event_count, (ignore_until_count IS NOT NULL OR ignore_until_users IS NOT NULL), \
                       status, resolved_kind, resolved_release, resolved_semver",
                    least = SQL.least,
                    greatest = SQL.greatest,
                )
            });
            // A resolution bound to releases is left for the rule below to judge;
            // any other resolved issue is unresolved again by its next event.
            let (
                prior_status,
                (issue_id, event_count, ignored_until_counts, status, resolved_kind, resolved_release, resolved_semver),
            ) = loop {
                let prior_status: Option<String> = sqlx::query_scalar(&PRIOR_STATUS)
                    .bind(e.project_id)
                    .bind(&fingerprint)
                    .fetch_optional(&mut *conn)
                    .await?;
                #[allow(clippy::type_complexity)]
                let row: (i64, i64, bool, String, Option<String>, Option<String>, bool) = sqlx::query_as(&UPSERT_ISSUE)
                    .bind(e.project_id)
                    .bind(&fingerprint)
                    .bind(SQL.text(&e.processed.title))
                    .bind(SQL.text(&e.processed.culprit))
                    .bind(event.level.as_str())
                    .bind(e.received_at)
                    .bind(SQL.text(&event.release))
                    .fetch_one(&mut *conn)
                    .await?;
                if row.1 == 1 {
                    if let Some(target) = merged_meanwhile(conn, e.project_id, &fingerprint, row.0).await? {
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
                        .execute(&mut *conn)
                        .await?;
                }
                None => count_not_stored(conn, issue_id).await?,
            }
            let release_bound = match resolved_kind.as_deref().and_then(ResolvedInKind::parse) {
                Some(kind) if status == "resolved" => {
                    Some(ResolvedIn { kind, release: resolved_release, semver: resolved_semver })
                }
                _ => None,
            };
            let regressed_by_release = match &release_bound {
                Some(resolved) => {
                    regress_by_release(conn, e.project_id, issue_id, resolved, &SQL.text(&event.release)).await?
                }
                None => false,
            };
            // Regressed: reopened by this event, plainly or by its release.
            let regressed =
                regressed_by_release || (prior_status.as_deref() == Some("resolved") && status != "resolved");
            if regressed {
                let release = Some(event.release.as_str()).filter(|r| !r.is_empty());
                let detail = serde_json::json!({ "event_id": event.event_id, "release": release });
                insert_activity(conn, issue_id, None, ActivityKind::Regression, &detail, e.received_at).await?;
            }
            // An issue's first event and the event of each regression are kept by
            // retention whatever the limits.
            // (A rate-limited event has no payload row to keep.)
            if let (Some(row_id), true) = (inserted, event_count == 1 || regressed) {
                sqlx::query("UPDATE events SET kept = $1 WHERE id = $2")
                    .bind(true)
                    .bind(row_id)
                    .execute(&mut *conn)
                    .await?;
            }
            if !rules.is_empty() {
                let facts = IssueFacts { created: event_count == 1, regressed };
                fire_alert_rules(conn, rules, e, issue_id, &facts).await?;
            }

            if let Some(user_key) = &e.processed.user_key {
                let new_user =
                    sqlx::query("INSERT INTO issue_users (issue_id, user_key) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                        .bind(issue_id)
                        .bind(SQL.text(user_key))
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                if new_user > 0 {
                    sqlx::query("UPDATE issues SET user_count = user_count + 1 WHERE id = $1")
                        .bind(issue_id)
                        .execute(&mut *conn)
                        .await?;
                }
            }
            if ignored_until_counts {
                end_ignore_on_counts(conn, issue_id, &event.event_id, e.received_at).await?;
            }
            counters.count(e.project_id, issue_id, event, e.processed.user_key.as_deref(), e.received_at);
            Ok(match not_stored {
                None => StoreOutcome::Stored { issue_id },
                Some(reason) => StoreOutcome::NotStored { issue_id, reason },
            })
        }

        #[async_trait]
        impl Ingest for $store {
            async fn ingest_target(&self, token: &str) -> StoreResult<Option<IngestTarget>> {
                if !SQL.can_hold(token) {
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

            async fn live_ingest_tokens(&self, tokens: &[&str]) -> StoreResult<Vec<String>> {
                let tokens: Vec<&str> = tokens.iter().copied().filter(|t| SQL.can_hold(t)).collect();
                if tokens.is_empty() {
                    return Ok(Vec::new());
                }
                let list = (1..=tokens.len()).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
                let sql = format!("SELECT token FROM project_keys WHERE revoked_at IS NULL AND token IN ({list})");
                let mut query = sqlx::query_scalar(&sql);
                for token in tokens {
                    query = query.bind(token);
                }
                query.fetch_all(&self.pool).await.map_err(unavailable("checking ingestion tokens"))
            }

            async fn record_handshake(&self, project_id: i64, sdk: &str, at: i64) -> StoreResult<()> {
                sqlx::query("UPDATE projects SET connected_at = $1, connected_sdk = $2 WHERE id = $3")
                    .bind(at)
                    .bind(SQL.text(sdk))
                    .bind(project_id)
                    .execute(&self.pool)
                    .await
                    .map_err(unavailable("recording a handshake"))?;
                Ok(())
            }

            async fn store_events(&self, batch: &[NewEvent]) -> StoreResult<Vec<StoreOutcome>> {
                // How a batch's transaction runs is the backend's own.
                self.store_batch(batch).await
            }

            fn set_installation_rate_limit(&self, limit: Option<RateLimit>) {
                self.installation_quota.set(limit);
            }
        }
    };
}

pub(super) use ingest_store;
