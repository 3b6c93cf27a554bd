//! The alert queries and [`super::Alerting`], written once for both
//! backends: macros expanded for each (`sql_backend.rs`), because sqlx's
//! connection and row types differ per backend while the SQL does not. From
//! the backend's dialect come `q`, which turns the `?` placeholders here into
//! its own, and `SKIP_LOCKED`, which lets nodes claim deliveries without
//! waiting for each other.

/// Defines the alert functions for one backend: `$conn` is its connection
/// type, `$row` its row type.
macro_rules! alert_queries {
    ($conn:ty, $row:ty) => {
        use super::alert_rules::*;

        const RULE_COLUMNS: &str =
            "r.id, r.project_id, r.name, r.trigger_kind, r.threshold, r.window_ms, r.filters, r.throttle_ms, r.created_at";
        const CHANNEL_COLUMNS: &str = "c.id, c.rule_id, c.kind, c.target, c.secret, c.last_failure_at, \
             c.last_failure_status, c.last_failure_detail";
        const DELIVERY_COLUMNS: &str = "d.id, d.rule_id, r.name AS rule_name, d.issue_id, i.title AS issue_title, \
             d.channel_id, d.channel_kind, d.recipient, d.kind, d.webhook_id, d.status, d.attempts, d.created_at, \
             d.next_attempt_at, d.sent_at, d.last_status, d.last_error";

        fn channel_from_row(row: &$row) -> Result<AlertChannel, sqlx::Error> {
            let kind: String = row.try_get("kind")?;
            let failure_at: Option<i64> = row.try_get("last_failure_at")?;
            Ok(AlertChannel {
                id: row.try_get("id")?,
                kind: ChannelKind::parse(&kind).unwrap_or(ChannelKind::Webhook),
                target: row.try_get("target")?,
                secret: row.try_get("secret")?,
                last_failure: match failure_at {
                    Some(at) => Some(ChannelFailure {
                        at,
                        status: row.try_get("last_failure_status")?,
                        detail: row.try_get::<Option<String>, _>("last_failure_detail")?.unwrap_or_default(),
                    }),
                    None => None,
                },
            })
        }

        fn rule_from_row(row: &$row) -> Result<AlertRule, sqlx::Error> {
            let trigger: String = row.try_get("trigger_kind")?;
            let filters: String = row.try_get("filters")?;
            let trigger = Trigger::from_stored(&trigger, row.try_get("threshold")?, row.try_get("window_ms")?)
                .ok_or_else(|| sqlx::Error::Decode(format!("unknown alert trigger {trigger:?}").into()))?;
            Ok(AlertRule {
                id: row.try_get("id")?,
                project_id: row.try_get("project_id")?,
                name: row.try_get("name")?,
                trigger,
                filters: serde_json::from_str(&filters).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                throttle_ms: row.try_get("throttle_ms")?,
                created_at: row.try_get("created_at")?,
                channels: Vec::new(),
            })
        }

        fn delivery_from_row(row: &$row) -> Result<DeliveryInfo, sqlx::Error> {
            Ok(DeliveryInfo {
                id: row.try_get("id")?,
                rule_id: row.try_get("rule_id")?,
                rule_name: row.try_get("rule_name")?,
                issue_id: row.try_get("issue_id")?,
                issue_title: row.try_get("issue_title")?,
                channel_id: row.try_get("channel_id")?,
                channel_kind: row.try_get("channel_kind")?,
                recipient: row.try_get("recipient")?,
                kind: row.try_get("kind")?,
                webhook_id: row.try_get("webhook_id")?,
                status: row.try_get("status")?,
                attempts: row.try_get("attempts")?,
                created_at: row.try_get("created_at")?,
                next_attempt_at: row.try_get("next_attempt_at")?,
                sent_at: row.try_get("sent_at")?,
                last_status: row.try_get("last_status")?,
                last_error: row.try_get("last_error")?,
            })
        }

        /// Rules (with their channels) matching `condition`, a clause on `r`
        /// made only of integers this code formatted, oldest first.
        async fn load_alert_rules(conn: &mut $conn, condition: &str) -> Result<Vec<AlertRule>, sqlx::Error> {
            let rows = sqlx::query(&format!("SELECT {RULE_COLUMNS} FROM alert_rules r WHERE {condition} ORDER BY r.id"))
                .fetch_all(&mut *conn)
                .await?;
            let mut rules = rows.iter().map(rule_from_row).collect::<Result<Vec<_>, _>>()?;
            if rules.is_empty() {
                return Ok(rules);
            }
            let channels = sqlx::query(&format!(
                "SELECT {CHANNEL_COLUMNS} FROM alert_channels c JOIN alert_rules r ON r.id = c.rule_id \
                 WHERE {condition} ORDER BY c.id"
            ))
            .fetch_all(&mut *conn)
            .await?;
            for row in &channels {
                let rule_id: i64 = row.try_get("rule_id")?;
                if let Some(rule) = rules.iter_mut().find(|r| r.id == rule_id) {
                    rule.channels.push(channel_from_row(row)?);
                }
            }
            Ok(rules)
        }

        /// The rules of the projects a batch stores into, by project. One
        /// query per batch; projects without rules cost nothing more.
        async fn rules_for_batch(
            conn: &mut $conn,
            batch: &[NewEvent],
        ) -> Result<std::collections::HashMap<i64, Vec<AlertRule>>, sqlx::Error> {
            let mut ids: Vec<i64> = batch.iter().map(|e| e.project_id).collect();
            ids.sort_unstable();
            ids.dedup();
            let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
            let mut by_project: std::collections::HashMap<i64, Vec<AlertRule>> = std::collections::HashMap::new();
            if ids.is_empty() {
                return Ok(by_project);
            }
            for rule in load_alert_rules(conn, &format!("r.project_id IN ({list})")).await? {
                by_project.entry(rule.project_id).or_default().push(rule);
            }
            Ok(by_project)
        }

        /// Writes one delivery per channel of a rule into the outbox, and
        /// for e-mail one per recipient (the members as they are now), so
        /// each recipient is retried, and capped, on its own.
        async fn enqueue_alert(
            conn: &mut $conn,
            rule: &AlertRule,
            issue_id: Option<i64>,
            event_id: Option<&str>,
            kind: AlertKind,
            now: i64,
        ) -> Result<(), sqlx::Error> {
            for channel in &rule.channels {
                let recipients: Vec<Option<String>> = match channel.kind {
                    ChannelKind::Email if channel.target == EMAIL_MEMBERS => {
                        email_recipient_rows(conn, rule.project_id).await?.into_iter().map(Some).collect()
                    }
                    ChannelKind::Email => vec![Some(channel.target.clone())],
                    _ => vec![None],
                };
                for recipient in recipients {
                    sqlx::query(&q(
                        "INSERT INTO alert_deliveries (project_id, rule_id, channel_id, channel_kind, recipient, issue_id, \
                         event_id, kind, webhook_id, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    ))
                    .bind(rule.project_id)
                    .bind(rule.id)
                    .bind(channel.id)
                    .bind(channel.kind.as_str())
                    .bind(recipient)
                    .bind(issue_id)
                    .bind(event_id)
                    .bind(kind.as_str())
                    .bind(new_webhook_id())
                    .bind(now)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                }
            }
            Ok(())
        }

        /// The in-transaction decision: after an event is counted, every
        /// rule of its project that fires writes its deliveries and its
        /// throttle mark in the same transaction. Counts for frequency and
        /// users rules use the `(issue_id, received_at)` index, plus the
        /// batch's rows not inserted yet (`in_batch`, this event's among
        /// them), and are skipped while throttled.
        async fn fire_alert_rules(
            conn: &mut $conn,
            rules: &[AlertRule],
            e: &NewEvent,
            issue_id: i64,
            facts: &IssueFacts,
            in_batch: &[super::ingest_sql::PendingEvent<'_>],
        ) -> Result<(), sqlx::Error> {
            let event = &e.processed.event;
            let seen = EventFacts {
                environment: &event.environment,
                level: event.level.as_str(),
                release: &event.release,
                tags: &event.tags,
            };
            let now = e.received_at;
            for rule in rules.iter().filter(|r| r.candidate(&seen, facts)) {
                let last: Option<i64> =
                    sqlx::query_scalar(&q("SELECT last_fired_at FROM alert_throttle WHERE rule_id = ? AND issue_id = ?"))
                        .bind(rule.id)
                        .bind(issue_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                if rule.throttled(last, now) {
                    continue;
                }
                let batch_rows = |window_ms: i64| {
                    in_batch.iter().filter(move |p| p.issue_id == issue_id && p.event.received_at > now - window_ms)
                };
                let reached = match rule.trigger {
                    Trigger::Frequency { count, window_ms } => {
                        // Counting stops at the threshold, so a busy issue
                        // costs at most `count` index entries per event.
                        let n: i64 = sqlx::query_scalar(&q(
                            "SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE issue_id = ? AND received_at > ? LIMIT ?) w",
                        ))
                        .bind(issue_id)
                        .bind(now - window_ms)
                        .bind(count)
                        .fetch_one(&mut *conn)
                        .await?;
                        n + batch_rows(window_ms).count() as i64 >= count
                    }
                    Trigger::Users { count, window_ms } => {
                        // Fewer than `count` stored users are all of them, so
                        // adding the batch's users to them counts exactly.
                        let stored: Vec<String> = sqlx::query_scalar(&q(
                            "SELECT DISTINCT user_key FROM events \
                             WHERE issue_id = ? AND received_at > ? AND user_key IS NOT NULL LIMIT ?",
                        ))
                        .bind(issue_id)
                        .bind(now - window_ms)
                        .bind(count)
                        .fetch_all(&mut *conn)
                        .await?;
                        let mut users: std::collections::HashSet<String> = stored.into_iter().collect();
                        users.extend(
                            batch_rows(window_ms)
                                .filter_map(|p| p.event.processed.user_key.as_deref())
                                .map(|key| text_bind(key).into_owned()),
                        );
                        users.len() as i64 >= count
                    }
                    _ => true,
                };
                if !reached {
                    continue;
                }
                sqlx::query(&q(
                    "INSERT INTO alert_throttle (rule_id, issue_id, last_fired_at) VALUES (?, ?, ?) \
                     ON CONFLICT (rule_id, issue_id) DO UPDATE SET last_fired_at = excluded.last_fired_at",
                ))
                .bind(rule.id)
                .bind(issue_id)
                .bind(now)
                .execute(&mut *conn)
                .await?;
                enqueue_alert(conn, rule, Some(issue_id), Some(&event.event_id), rule.trigger.alert_kind(), now)
                    .await?;
            }
            Ok(())
        }

        /// An ignored issue's ignore condition ended: its project's
        /// `unignored` rules fire (throttled like any other). `event_id` is
        /// the event that ended it, if an event did.
        async fn fire_unignored(
            conn: &mut $conn,
            project_id: i64,
            issue_id: i64,
            event_id: Option<&str>,
            now: i64,
        ) -> Result<(), sqlx::Error> {
            let rules = load_alert_rules(conn, &format!("r.project_id = {project_id}")).await?;
            for rule in rules.iter().filter(|r| r.trigger == Trigger::Unignored) {
                let last: Option<i64> =
                    sqlx::query_scalar(&q("SELECT last_fired_at FROM alert_throttle WHERE rule_id = ? AND issue_id = ?"))
                        .bind(rule.id)
                        .bind(issue_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                if rule.throttled(last, now) {
                    continue;
                }
                sqlx::query(&q(
                    "INSERT INTO alert_throttle (rule_id, issue_id, last_fired_at) VALUES (?, ?, ?) \
                     ON CONFLICT (rule_id, issue_id) DO UPDATE SET last_fired_at = excluded.last_fired_at",
                ))
                .bind(rule.id)
                .bind(issue_id)
                .bind(now)
                .execute(&mut *conn)
                .await?;
                enqueue_alert(conn, rule, Some(issue_id), event_id, AlertKind::Unignored, now).await?;
            }
            Ok(())
        }

        /// After an event of an ignored issue is counted: when the issue's
        /// event or user count reached its ignore's target, the issue is
        /// unresolved again and the unignored rules fire, in the event's
        /// transaction.
        async fn end_ignore_on_counts(
            conn: &mut $conn,
            issue_id: i64,
            event_id: &str,
            now: i64,
        ) -> Result<(), sqlx::Error> {
            let ended: Option<i64> = sqlx::query_scalar(&q(
                "UPDATE issues SET status = 'unresolved', ignore_until = NULL, ignore_until_count = NULL, \
                 ignore_until_users = NULL WHERE id = ? AND status = 'ignored' AND (\
                   (ignore_until_count IS NOT NULL AND event_count >= ignore_until_count) \
                   OR (ignore_until_users IS NOT NULL AND user_count >= ignore_until_users)) \
                 RETURNING project_id",
            ))
            .bind(issue_id)
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(project_id) = ended {
                record_ignore_ended(conn, issue_id, now).await?;
                fire_unignored(conn, project_id, issue_id, Some(event_id), now).await?;
            }
            Ok(())
        }

        /// An ignore's condition ended: booboo set the issue unresolved again,
        /// which its activity shows.
        async fn record_ignore_ended(conn: &mut $conn, issue_id: i64, now: i64) -> Result<(), sqlx::Error> {
            let detail = serde_json::json!({ "status": "unresolved", "reason": "ignore_ended" });
            insert_activity(conn, issue_id, None, super::activity::ActivityKind::Status, &detail, now).await?;
            Ok(())
        }

        /// Whether a timed ignore is due: a read, so that the sweep takes no
        /// write lock while nothing is due.
        async fn any_expired_ignore(conn: &mut $conn, now: i64) -> Result<bool, sqlx::Error> {
            sqlx::query_scalar(&q(
                "SELECT EXISTS (SELECT 1 FROM issues WHERE ignore_until IS NOT NULL AND ignore_until <= ? \
                 AND status = 'ignored')",
            ))
            .bind(now)
            .fetch_one(&mut *conn)
            .await
        }

        /// Ends the timed ignores due at `now` and fires their unignored
        /// rules. The update re-checks `status = 'ignored'` under the row
        /// lock, so of two nodes sweeping at once only one flips each issue.
        async fn end_expired_ignore_rows(conn: &mut $conn, now: i64) -> Result<u64, sqlx::Error> {
            let rows = sqlx::query(&q(
                "UPDATE issues SET status = 'unresolved', ignore_until = NULL, ignore_until_count = NULL, \
                 ignore_until_users = NULL WHERE status = 'ignored' AND ignore_until IS NOT NULL \
                 AND ignore_until <= ? RETURNING id, project_id",
            ))
            .bind(now)
            .fetch_all(&mut *conn)
            .await?;
            for row in &rows {
                let (issue_id, project_id): (i64, i64) = (row.try_get("id")?, row.try_get("project_id")?);
                record_ignore_ended(conn, issue_id, now).await?;
                fire_unignored(conn, project_id, issue_id, None, now).await?;
            }
            Ok(rows.len() as u64)
        }

        async fn insert_alert_rule(
            conn: &mut $conn,
            project_id: i64,
            rule: &NewAlertRule,
            at: i64,
        ) -> Result<i64, sqlx::Error> {
            let (threshold, window_ms) = rule.trigger.threshold_and_window();
            let id: i64 = sqlx::query_scalar(&q(
                "INSERT INTO alert_rules (project_id, name, trigger_kind, threshold, window_ms, filters, throttle_ms, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            ))
            .bind(project_id)
            .bind(&rule.name)
            .bind(rule.trigger.name())
            .bind(threshold)
            .bind(window_ms)
            .bind(serde_json::to_string(&rule.filters).unwrap_or_else(|_| "{}".into()))
            .bind(rule.throttle_ms)
            .bind(at)
            .fetch_one(&mut *conn)
            .await?;
            insert_alert_channels(conn, id, &rule.channels).await?;
            Ok(id)
        }

        async fn insert_alert_channels(conn: &mut $conn, rule_id: i64, channels: &[NewChannel]) -> Result<(), sqlx::Error> {
            for channel in channels {
                sqlx::query(&q("INSERT INTO alert_channels (rule_id, kind, target, secret) VALUES (?, ?, ?, ?)"))
                    .bind(rule_id)
                    .bind(channel.kind.as_str())
                    .bind(&channel.target)
                    .bind(&channel.secret)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        }

        /// Replaces a rule's settings; its channels too when `channels` is
        /// `Some` (a channel kept with the same kind and target keeps its id,
        /// its secret unless a new one is given, and its pending deliveries).
        async fn update_alert_rule_row(
            conn: &mut $conn,
            id: i64,
            rule: &NewAlertRule,
            replace_channels: bool,
        ) -> Result<(), sqlx::Error> {
            let (threshold, window_ms) = rule.trigger.threshold_and_window();
            sqlx::query(&q(
                "UPDATE alert_rules SET name = ?, trigger_kind = ?, threshold = ?, window_ms = ?, filters = ?, \
                 throttle_ms = ? WHERE id = ?",
            ))
            .bind(&rule.name)
            .bind(rule.trigger.name())
            .bind(threshold)
            .bind(window_ms)
            .bind(serde_json::to_string(&rule.filters).unwrap_or_else(|_| "{}".into()))
            .bind(rule.throttle_ms)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            if !replace_channels {
                return Ok(());
            }
            let existing = load_alert_rules(conn, &format!("r.id = {id}")).await?.pop().map(|r| r.channels).unwrap_or_default();
            let mut fresh = Vec::new();
            let mut kept = Vec::new();
            for channel in &rule.channels {
                match existing.iter().find(|c| c.kind == channel.kind && c.target == channel.target && !kept.contains(&c.id)) {
                    Some(old) => {
                        kept.push(old.id);
                        if channel.secret.is_some() {
                            sqlx::query(&q("UPDATE alert_channels SET secret = ? WHERE id = ?"))
                                .bind(&channel.secret)
                                .bind(old.id)
                                .execute(&mut *conn)
                                .await?;
                        }
                    }
                    None => fresh.push(channel.clone()),
                }
            }
            for old in existing.iter().filter(|c| !kept.contains(&c.id)) {
                sqlx::query(&q("DELETE FROM alert_channels WHERE id = ?")).bind(old.id).execute(&mut *conn).await?;
            }
            insert_alert_channels(conn, id, &fresh).await
        }

        /// Whether the viewer may see the project of a rule.
        async fn alert_rule_visible(conn: &mut $conn, viewer: Viewer, id: i64) -> Result<bool, sqlx::Error> {
            sqlx::query_scalar(&q(
                "SELECT EXISTS (SELECT 1 FROM alert_rules r JOIN projects p ON p.id = r.project_id \
                 WHERE (? OR p.org_id IN (SELECT org_id FROM memberships WHERE user_id = ?)) AND r.id = ?)",
            ))
            .bind(viewer.is_admin)
            .bind(viewer.user_id)
            .bind(id)
            .fetch_one(&mut *conn)
            .await
        }

        /// Whether any delivery is due and unclaimed: a read, so that the
        /// worker's polling takes no write lock while the outbox is idle.
        async fn any_due_delivery(conn: &mut $conn, now: i64) -> Result<bool, sqlx::Error> {
            sqlx::query_scalar(&q(
                "SELECT EXISTS (SELECT 1 FROM alert_deliveries WHERE status = 'pending' AND next_attempt_at <= ? \
                 AND (claimed_until IS NULL OR claimed_until < ?))",
            ))
            .bind(now)
            .bind(now)
            .fetch_one(&mut *conn)
            .await
        }

        /// Claims up to `limit` due deliveries for `node` until `now + lease_ms`.
        /// A claim another node holds is skipped, an expired one taken over.
        async fn claim_due_deliveries(
            conn: &mut $conn,
            node: &str,
            now: i64,
            lease_ms: i64,
            limit: i64,
        ) -> Result<Vec<DueDelivery>, sqlx::Error> {
            let ids: Vec<i64> = sqlx::query_scalar(&q(&format!(
                "UPDATE alert_deliveries SET claimed_by = ?, claimed_until = ? WHERE id IN (\
                   SELECT id FROM alert_deliveries WHERE status = 'pending' AND next_attempt_at <= ? \
                   AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY next_attempt_at, id LIMIT ?{SKIP_LOCKED}) \
                 RETURNING id"
            )))
            .bind(node)
            .bind(now + lease_ms)
            .bind(now)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?;
            let mut due = Vec::with_capacity(ids.len());
            for id in ids {
                let row = sqlx::query(&q(
                    "SELECT d.id, d.webhook_id, d.kind, d.attempts, d.created_at, d.rule_id, d.channel_id, d.project_id, \
                     d.issue_id, d.event_id, d.recipient FROM alert_deliveries d WHERE d.id = ?",
                ))
                .bind(id)
                .fetch_one(&mut *conn)
                .await?;
                let kind: String = row.try_get("kind")?;
                let rule_id: Option<i64> = row.try_get("rule_id")?;
                let channel_id: Option<i64> = row.try_get("channel_id")?;
                let project_id: i64 = row.try_get("project_id")?;
                let issue_id: Option<i64> = row.try_get("issue_id")?;
                let event_id: Option<String> = row.try_get("event_id")?;
                let channel = match channel_id {
                    Some(channel_id) => sqlx::query(&format!(
                        "SELECT {CHANNEL_COLUMNS} FROM alert_channels c WHERE c.id = {channel_id}"
                    ))
                    .fetch_optional(&mut *conn)
                    .await?
                    .map(|r| channel_from_row(&r))
                    .transpose()?,
                    None => None,
                };
                let Some(channel) = channel else {
                    // The rule or channel was deleted after the alert was
                    // written: nothing to send it to.
                    sqlx::query(&q(
                        "UPDATE alert_deliveries SET status = 'failed', claimed_by = NULL, claimed_until = NULL, \
                         last_error = 'the rule or its channel was deleted before delivery' WHERE id = ?",
                    ))
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                    continue;
                };
                let rule = match rule_id {
                    Some(rule_id) => load_alert_rules(conn, &format!("r.id = {rule_id}")).await?.pop(),
                    None => None,
                };
                let project_row = sqlx::query(&format!(
                    "SELECT {PROJECT_COLUMNS} FROM projects p JOIN organisations o ON o.id = p.org_id WHERE p.id = {project_id}"
                ))
                .fetch_one(&mut *conn)
                .await?;
                let issue = match issue_id {
                    Some(issue_id) => sqlx::query(&format!("SELECT {ISSUE_COLUMNS} FROM issues i WHERE i.id = {issue_id}"))
                        .fetch_optional(&mut *conn)
                        .await?
                        .map(|r| issue_from_row(&r))
                        .transpose()?,
                    None => None,
                };
                let event = match &event_id {
                    Some(event_id) => sqlx::query(&q(
                        "SELECT event_id, issue_id, project_id, received_at, payload, body FROM events \
                         WHERE project_id = ? AND event_id = ?",
                    ))
                    .bind(project_id)
                    .bind(event_id)
                    .fetch_optional(&mut *conn)
                    .await?
                    .map(|r| event_from_row(&r))
                    .transpose()?,
                    None => None,
                };
                due.push(DueDelivery {
                    id,
                    webhook_id: row.try_get("webhook_id")?,
                    kind: AlertKind::parse(&kind).unwrap_or(AlertKind::Test),
                    attempts: row.try_get("attempts")?,
                    created_at: row.try_get("created_at")?,
                    rule,
                    channel,
                    recipient: row.try_get("recipient")?,
                    project: project_from_row(&project_row)?,
                    issue,
                    event,
                });
            }
            Ok(due)
        }

        /// Records how an attempt ended; only the node holding the claim may.
        /// The channel's last failure is set or, on success, cleared.
        async fn finish_delivery_row(
            conn: &mut $conn,
            id: i64,
            node: &str,
            now: i64,
            result: &AttemptResult,
        ) -> Result<bool, sqlx::Error> {
            let (status, next, sent_at, http, error) = match result {
                AttemptResult::Sent { status } => ("sent", now, Some(now), *status, None),
                AttemptResult::Retry { status, detail, next_attempt_at } => {
                    ("pending", *next_attempt_at, None, *status, Some(detail.clone()))
                }
                AttemptResult::Failed { status, detail } => ("failed", now, None, *status, Some(detail.clone())),
            };
            let finished = sqlx::query(&q(
                "UPDATE alert_deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?, sent_at = ?, \
                 last_status = ?, last_error = ?, claimed_by = NULL, claimed_until = NULL \
                 WHERE id = ? AND claimed_by = ? RETURNING channel_id, issue_id, rule_id, kind, channel_kind, recipient",
            ))
            .bind(status)
            .bind(next)
            .bind(sent_at)
            .bind(http)
            .bind(&error)
            .bind(id)
            .bind(node)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(finished) = finished else { return Ok(false) };
            let channel: Option<i64> = finished.try_get("channel_id")?;
            let issue_id: Option<i64> = finished.try_get("issue_id")?;
            if let (AttemptResult::Sent { .. }, Some(issue_id)) = (result, issue_id) {
                // The issue's history shows each alert about it that went out.
                let rule_id: Option<i64> = finished.try_get("rule_id")?;
                let rule: Option<String> = match rule_id {
                    Some(rule_id) => sqlx::query_scalar(&q("SELECT name FROM alert_rules WHERE id = ?"))
                        .bind(rule_id)
                        .fetch_optional(&mut *conn)
                        .await?,
                    None => None,
                };
                let detail = serde_json::json!({
                    "alert": finished.try_get::<String, _>("kind")?,
                    "channel": finished.try_get::<String, _>("channel_kind")?,
                    "recipient": finished.try_get::<Option<String>, _>("recipient")?,
                    "rule": rule,
                });
                insert_activity(conn, issue_id, None, super::activity::ActivityKind::AlertSent, &detail, now).await?;
            }
            if let Some(channel) = channel {
                record_channel_row(conn, channel, now, http, error.as_deref()).await?;
            }
            Ok(true)
        }

        async fn record_channel_row(
            conn: &mut $conn,
            channel_id: i64,
            now: i64,
            status: Option<i64>,
            failure: Option<&str>,
        ) -> Result<(), sqlx::Error> {
            match failure {
                Some(detail) => {
                    sqlx::query(&q(
                        "UPDATE alert_channels SET last_failure_at = ?, last_failure_status = ?, \
                         last_failure_detail = ? WHERE id = ?",
                    ))
                    .bind(now)
                    .bind(status)
                    .bind(detail)
                    .bind(channel_id)
                    .execute(&mut *conn)
                    .await?;
                }
                None => {
                    sqlx::query(&q(
                        "UPDATE alert_channels SET last_failure_at = NULL, last_failure_status = NULL, \
                         last_failure_detail = NULL WHERE id = ?",
                    ))
                    .bind(channel_id)
                    .execute(&mut *conn)
                    .await?;
                }
            }
            Ok(())
        }

        /// Deliveries matching `condition` (a clause on `d` made of integers
        /// this code formatted), newest first.
        async fn list_delivery_rows(
            conn: &mut $conn,
            condition: &str,
            limit: i64,
        ) -> Result<Vec<DeliveryInfo>, sqlx::Error> {
            sqlx::query(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries d LEFT JOIN alert_rules r ON r.id = d.rule_id \
                 LEFT JOIN issues i ON i.id = d.issue_id WHERE {condition} ORDER BY d.id DESC LIMIT {limit}"
            ))
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(delivery_from_row)
            .collect()
        }
        /// Who gets a project's "members" e-mail: its organisation's members
        /// who have not opted out of the project's alerts.
        async fn email_recipient_rows(conn: &mut $conn, project_id: i64) -> Result<Vec<String>, sqlx::Error> {
            sqlx::query_scalar(&q(
                "SELECT u.email FROM memberships m JOIN users u ON u.id = m.user_id \
                 JOIN projects p ON p.org_id = m.org_id WHERE p.id = ? AND NOT EXISTS (\
                   SELECT 1 FROM alert_email_optouts o WHERE o.user_id = u.id AND o.project_id = p.id) \
                 ORDER BY u.email",
            ))
            .bind(project_id)
            .fetch_all(&mut *conn)
            .await
        }

        /// Counts one e-mail to `address` in its window; whether it is
        /// within `cap`. A window starts with the first e-mail after the
        /// last one ended.
        async fn reserve_email_row(
            conn: &mut $conn,
            address: &str,
            now: i64,
            cap: i64,
            window_ms: i64,
        ) -> Result<bool, sqlx::Error> {
            let sent: i64 = sqlx::query_scalar(&q(
                "INSERT INTO alert_email_budget (address, window_ends_at, sent) VALUES (?, ?, 1) \
                 ON CONFLICT (address) DO UPDATE SET \
                   window_ends_at = CASE WHEN alert_email_budget.window_ends_at <= ? \
                     THEN excluded.window_ends_at ELSE alert_email_budget.window_ends_at END, \
                   sent = CASE WHEN alert_email_budget.window_ends_at <= ? THEN 1 ELSE alert_email_budget.sent + 1 END \
                 RETURNING sent",
            ))
            .bind(address)
            .bind(now + window_ms)
            .bind(now)
            .bind(now)
            .fetch_one(&mut *conn)
            .await?;
            Ok(sent <= cap)
        }

        async fn hold_email_row(conn: &mut $conn, address: &str, now: i64, summary: &str, url: &str) -> Result<(), sqlx::Error> {
            sqlx::query(&q("INSERT INTO alert_email_held (address, held_at, summary, url) VALUES (?, ?, ?, ?)"))
                .bind(address)
                .bind(now)
                .bind(summary)
                .bind(url)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        /// Takes (deletes and returns) what was held back for addresses whose
        /// window has ended: each held alert goes into one node's digest.
        async fn take_digest_rows(conn: &mut $conn, now: i64) -> Result<Vec<HeldEmail>, sqlx::Error> {
            let rows = sqlx::query(&q(
                "DELETE FROM alert_email_held WHERE address IN (\
                   SELECT address FROM alert_email_budget WHERE window_ends_at <= ?) \
                 RETURNING address, held_at, summary, url",
            ))
            .bind(now)
            .fetch_all(&mut *conn)
            .await?;
            let mut held = rows
                .iter()
                .map(|r| {
                    Ok(HeldEmail {
                        address: r.try_get("address")?,
                        held_at: r.try_get("held_at")?,
                        summary: r.try_get("summary")?,
                        url: r.try_get("url")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            held.sort_by(|a, b| (&a.address, a.held_at).cmp(&(&b.address, b.held_at)));
            Ok(held)
        }

        async fn set_opt_out_row(conn: &mut $conn, user_id: i64, project_id: i64, out: bool) -> Result<(), sqlx::Error> {
            let sql = if out {
                "INSERT INTO alert_email_optouts (user_id, project_id) VALUES (?, ?) ON CONFLICT DO NOTHING"
            } else {
                "DELETE FROM alert_email_optouts WHERE user_id = ? AND project_id = ?"
            };
            sqlx::query(&q(sql)).bind(user_id).bind(project_id).execute(&mut *conn).await?;
            Ok(())
        }

        async fn opt_out_rows(conn: &mut $conn, user_id: i64) -> Result<Vec<i64>, sqlx::Error> {
            sqlx::query_scalar(&q("SELECT project_id FROM alert_email_optouts WHERE user_id = ? ORDER BY project_id"))
                .bind(user_id)
                .fetch_all(&mut *conn)
                .await
        }
    };
}
pub(super) use alert_queries;

/// Defines `impl Alerting` for one backend's store, on the queries of
/// `alert_queries`: `$conn` is its connection type.
macro_rules! alerting_store {
    ($store:ty, $conn:ty) => {
        #[async_trait]
        impl Alerting for $store {
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

            async fn claim_deliveries(
                &self,
                node: &str,
                now: i64,
                lease_ms: i64,
                limit: i64,
            ) -> StoreResult<Vec<DueDelivery>> {
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

            async fn finish_delivery(
                &self,
                id: i64,
                node: &str,
                now: i64,
                result: &AttemptResult,
            ) -> StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let held = finish_delivery_row(&mut tx, id, node, now, result)
                    .await
                    .map_err(unavailable("recording a delivery"))?;
                tx.commit().await.map_err(unavailable("committing a delivery"))?;
                Ok(held)
            }

            async fn release_delivery_claims(&self) -> StoreResult<()> {
                // Only where one server runs on the database are the claims
                // it finds at start its own previous run's.
                if !SQL.one_server_per_database {
                    return Ok(());
                }
                sqlx::query(
                    "UPDATE alert_deliveries SET claimed_by = NULL, claimed_until = NULL WHERE status = 'pending'",
                )
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
                email_recipient_rows(&mut conn, project_id)
                    .await
                    .map_err(unavailable("listing alert e-mail recipients"))
            }

            async fn reserve_alert_email(
                &self,
                address: &str,
                now: i64,
                cap: i64,
                window_ms: i64,
            ) -> StoreResult<bool> {
                let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
                reserve_email_row(&mut conn, address, now, cap, window_ms)
                    .await
                    .map_err(unavailable("counting alert e-mails"))
            }

            async fn hold_alert_email(&self, address: &str, now: i64, summary: &str, url: &str) -> StoreResult<()> {
                let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
                hold_email_row(&mut conn, address, now, summary, url)
                    .await
                    .map_err(unavailable("holding an alert e-mail"))
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
    };
}

pub(super) use alerting_store;
