//! The ingest path ([`super::Ingest`]): a token's project, the handshake,
//! and storing a batch's events (`store_batch_events`: duplicates, quotas,
//! the issue upsert, regressions, alert rules, users, ended ignores, then
//! the event rows), written once for both backends like `accounts_sql.rs`.
//! How a batch's transaction runs stays with each backend (`store_batch`):
//! SQLite stores events in the order they came under its one write lock;
//! PostgreSQL sorts them so nodes take row locks in the same order, and runs
//! a batch again when it loses a race to another node.
//!
//! What cannot change while a batch is stored is read once per batch, not
//! once per event: which of its events are already stored, which of its
//! fingerprints were merged into another issue, and the status of each of
//! its issues (locked on PostgreSQL, in the order merges and retention lock
//! them). Each event then costs its user; its issue costs one upsert per
//! batch for all of the batch's events of an issue that is neither resolved
//! nor ignored ([`IssueGroup`]: nothing in such an upsert depends on the
//! order of its events but what the group sums), one upsert per event
//! otherwise (regressions, release-bound resolutions and ignores that end
//! at a count are judged event by event). Its row is inserted at the end of
//! the batch, with its issue and its `kept` mark known, by one multi-row
//! statement per [`EVENT_ROWS_PER_STATEMENT`] events.

use super::NewEvent;

/// Event rows per multi-row insert: 15 values a row, far below both
/// backends' limit on bind parameters (SQLite 32,766; PostgreSQL 65,535).
pub(super) const EVENT_ROWS_PER_STATEMENT: usize = 500;

/// Event ids or fingerprints per `IN (…)` list of a batch's lookups.
pub(super) const KEYS_PER_LOOKUP: usize = 500;

/// The distinct `key`s of a batch's events per project, sorted: what the
/// batch's lookups (stored ids, merged fingerprints) ask for.
pub(super) fn keys_by_project<'a>(
    batch: &'a [NewEvent],
    key: impl Fn(&'a NewEvent) -> &'a str,
) -> std::collections::BTreeMap<i64, Vec<&'a str>> {
    let mut keys: std::collections::BTreeMap<i64, std::collections::BTreeSet<&str>> = Default::default();
    for e in batch {
        keys.entry(e.project_id).or_default().insert(key(e));
    }
    keys.into_iter().map(|(project_id, keys)| (project_id, keys.into_iter().collect())).collect()
}

/// An event of the batch whose row is written at the batch's end, with what
/// the row says beyond the event: its issue, and whether retention keeps it.
pub(super) struct PendingEvent<'a> {
    pub event: &'a NewEvent,
    pub issue_id: i64,
    pub kept: bool,
}

/// What an issue's upsert says of the issue, after the events it counted.
#[derive(Clone)]
pub(super) struct UpsertedIssue {
    pub id: i64,
    pub event_count: i64,
    /// Whether an ignore that ends at a count is set.
    pub ignored_until_counts: bool,
    pub status: String,
    pub resolved_kind: Option<String>,
    pub resolved_release: Option<String>,
    pub resolved_semver: bool,
}

/// What events tell their issue's upsert: for one event, its own; for an
/// [`IssueGroup`], the sum of its events, in the order they are stored.
pub(super) struct IssueSeen<'a> {
    /// The last event's: each event overwrites them.
    pub title: &'a str,
    pub culprit: &'a str,
    pub level: &'a str,
    pub first_seen: i64,
    pub last_seen: i64,
    pub events: i64,
    /// The first non-empty release: the issue's first release if it has none.
    pub release: &'a str,
}

impl<'a> IssueSeen<'a> {
    pub fn of(e: &'a NewEvent) -> IssueSeen<'a> {
        let event = &e.processed.event;
        IssueSeen {
            title: &e.processed.title,
            culprit: &e.processed.culprit,
            level: event.level.as_str(),
            first_seen: e.received_at,
            last_seen: e.received_at,
            events: 1,
            release: &event.release,
        }
    }

    /// Adds a later event of the same issue.
    pub fn add(&mut self, e: &'a NewEvent) {
        let next = IssueSeen::of(e);
        (self.title, self.culprit, self.level) = (next.title, next.culprit, next.level);
        self.first_seen = self.first_seen.min(next.first_seen);
        self.last_seen = self.last_seen.max(next.last_seen);
        self.events += 1;
        if self.release.is_empty() {
            self.release = next.release;
        }
    }
}

/// Two or more of a batch's events counted on one issue that was neither
/// resolved nor ignored when the batch read it (and is locked on
/// PostgreSQL): no event of theirs can regress it or end an ignore, so one
/// upsert counts them all, at the first of them, and each event takes its
/// place in the count (`created` and `kept` for the first of a new issue,
/// as one by one).
pub(super) struct IssueGroup<'a> {
    pub seen: IssueSeen<'a>,
    /// Whether the batch found no issue: one that another node created
    /// meanwhile sends the batch round again.
    pub new: bool,
    /// After the upsert: the issue, and the count of the group's next event.
    pub upserted: Option<(UpsertedIssue, i64)>,
}

/// What a batch knows while its events are stored one after another.
#[derive(Default)]
pub(super) struct BatchState<'a> {
    /// Whether each event of the batch (by its index) is counted: neither
    /// already stored nor met earlier in the batch.
    pub counted: Vec<bool>,
    /// A merged fingerprint → the fingerprint of the issue it was merged into.
    pub merged: std::collections::HashMap<(i64, String), String>,
    /// The status of each issue the batch counts on, as the batch leaves it
    /// so far (`None`: no issue yet); only whether it is resolved is read.
    pub statuses: std::collections::HashMap<(i64, String), Option<String>>,
    /// The batch's groups of events sharing one upsert, by issue.
    pub groups: std::collections::HashMap<(i64, String), IssueGroup<'a>>,
    /// The rows to insert at the end, in the order the events were stored.
    pub pending: Vec<PendingEvent<'a>>,
    /// Events counted but not stored (over a quota), per issue.
    pub not_stored: std::collections::BTreeMap<i64, i64>,
}

/// Why a batch's events could not be stored.
#[derive(Debug)]
pub(super) enum EventsFailure {
    Database(sqlx::Error),
    /// Another transaction (another PostgreSQL node) changed what the batch
    /// read before it wrote: stored one of its events, created one of its
    /// issues or merged one of its fingerprints. The batch runs again, and
    /// then reads it.
    Raced,
}

impl From<sqlx::Error> for EventsFailure {
    fn from(e: sqlx::Error) -> Self {
        EventsFailure::Database(e)
    }
}

impl EventsFailure {
    /// Whether running the batch again may succeed: it lost a race to
    /// another node.
    pub(super) fn lost_race(&self) -> bool {
        match self {
            EventsFailure::Database(e) => super::rows::is_lost_race(e),
            EventsFailure::Raced => true,
        }
    }

    pub(super) fn into_store_error(self) -> super::StoreError {
        match self {
            EventsFailure::Database(e) => super::rows::unavailable("storing a batch's events")(e),
            EventsFailure::Raced => super::StoreError::Unavailable(
                "storing a batch's events: another node stored one of them, or changed one of their issues, meanwhile"
                    .into(),
            ),
        }
    }
}

/// Defines `store_batch_events` and `impl Ingest` for one backend's store:
/// `$conn` is its connection type.
macro_rules! ingest_store {
    ($store:ty, $conn:ty) => {
        use super::ingest_sql::{
            BatchState, EventsFailure, IssueGroup, IssueSeen, PendingEvent, UpsertedIssue, EVENT_ROWS_PER_STATEMENT,
            KEYS_PER_LOOKUP,
        };

        /// Stores a batch's events inside its transaction, in `order` (the
        /// backend's), and returns each event's outcome in the batch's order.
        async fn store_batch_events(
            conn: &mut $conn,
            batch: &[NewEvent],
            order: &[usize],
            rules: &std::collections::HashMap<i64, Vec<AlertRule>>,
            quotas: &mut BatchQuotas,
            counters: &mut BatchCounters,
        ) -> Result<Vec<StoreOutcome>, EventsFailure> {
            let mut seen = stored_event_ids(conn, batch).await?;
            let mut state = BatchState::default();
            state.counted = vec![false; batch.len()];
            for &i in order {
                state.counted[i] = seen.insert((batch[i].project_id, batch[i].processed.event.event_id.clone()));
            }
            state.merged = merged_fingerprints(conn, batch).await?;
            let issue_of = |e: &NewEvent, merged: &std::collections::HashMap<(i64, String), String>| {
                let own = &e.processed.fingerprint.fingerprint;
                (e.project_id, merged.get(&(e.project_id, own.clone())).unwrap_or(own).clone())
            };
            // The issues the batch's counted events count on, under their
            // merged fingerprints; duplicates lock nothing.
            let mut issues: std::collections::BTreeMap<i64, std::collections::BTreeSet<String>> = Default::default();
            for &i in order.iter().filter(|&&i| state.counted[i]) {
                let (project_id, fingerprint) = issue_of(&batch[i], &state.merged);
                issues.entry(project_id).or_default().insert(fingerprint);
            }
            state.statuses = issue_statuses(conn, &issues).await?;
            let mut groups: std::collections::HashMap<(i64, String), IssueGroup<'_>> = Default::default();
            for &i in order.iter().filter(|&&i| state.counted[i]) {
                let issue = issue_of(&batch[i], &state.merged);
                let status = state.statuses.get(&issue).cloned().flatten();
                if matches!(status.as_deref(), Some("resolved" | "ignored")) {
                    continue;
                }
                match groups.get_mut(&issue) {
                    Some(group) => group.seen.add(&batch[i]),
                    None => {
                        let seen = IssueSeen::of(&batch[i]);
                        groups.insert(issue, IssueGroup { seen, new: status.is_none(), upserted: None });
                    }
                }
            }
            // A group of one is an event stored on its own.
            groups.retain(|_, group| group.seen.events > 1);
            state.groups = groups;
            let mut outcomes = vec![StoreOutcome::Duplicate; batch.len()];
            for &i in order {
                let rules = rules.get(&batch[i].project_id).map(Vec::as_slice).unwrap_or_default();
                outcomes[i] = store_one(conn, i, &batch[i], rules, quotas, counters, &mut state).await?;
            }
            count_not_stored(conn, &state.not_stored).await?;
            insert_events(conn, &state.pending).await?;
            Ok(outcomes)
        }

        /// Which of the batch's `(project, event_id)` are already stored: one
        /// query per project (and per [`KEYS_PER_LOOKUP`] events).
        async fn stored_event_ids(
            conn: &mut $conn,
            batch: &[NewEvent],
        ) -> Result<std::collections::HashSet<(i64, String)>, sqlx::Error> {
            let mut stored = std::collections::HashSet::new();
            for (project_id, ids) in super::ingest_sql::keys_by_project(batch, |e| &e.processed.event.event_id) {
                for chunk in ids.chunks(KEYS_PER_LOOKUP) {
                    let sql = q(&format!(
                        "SELECT event_id FROM events WHERE project_id = ? AND event_id IN {}",
                        super::batch_counters::values(1, chunk.len())
                    ));
                    let mut query = sqlx::query_scalar::<_, String>(&sql).persistent(false).bind(project_id);
                    for id in chunk {
                        query = query.bind(*id);
                    }
                    stored.extend(query.fetch_all(&mut *conn).await?.into_iter().map(|id| (project_id, id)));
                }
            }
            Ok(stored)
        }

        /// The batch's fingerprints that were merged into another issue, with
        /// the fingerprint of that issue.
        async fn merged_fingerprints(
            conn: &mut $conn,
            batch: &[NewEvent],
        ) -> Result<std::collections::HashMap<(i64, String), String>, sqlx::Error> {
            let mut merged = std::collections::HashMap::new();
            let fingerprints = super::ingest_sql::keys_by_project(batch, |e| &e.processed.fingerprint.fingerprint);
            for (project_id, fingerprints) in fingerprints {
                for chunk in fingerprints.chunks(KEYS_PER_LOOKUP) {
                    let sql = q(&format!(
                        "SELECT a.fingerprint, i.fingerprint FROM issue_aliases a JOIN issues i ON i.id = a.issue_id \
                         WHERE a.project_id = ? AND a.fingerprint IN {}",
                        super::batch_counters::values(1, chunk.len())
                    ));
                    let mut query = sqlx::query_as::<_, (String, String)>(&sql).persistent(false).bind(project_id);
                    for fingerprint in chunk {
                        query = query.bind(*fingerprint);
                    }
                    let rows = query.fetch_all(&mut *conn).await?;
                    merged.extend(rows.into_iter().map(|(own, target)| ((project_id, own), target)));
                }
            }
            Ok(merged)
        }

        /// The status of the issues of these fingerprints (`None`: no issue
        /// yet). Alert rules and regressions need to know whether an issue was
        /// resolved before an event, and nothing else changes it until the
        /// commit: SQLite's write lock is held, and PostgreSQL's rows are
        /// locked here, by project and fingerprint like a merge locks them,
        /// as the upserts would lock them anyway.
        async fn issue_statuses(
            conn: &mut $conn,
            issues: &std::collections::BTreeMap<i64, std::collections::BTreeSet<String>>,
        ) -> Result<std::collections::HashMap<(i64, String), Option<String>>, sqlx::Error> {
            let mut statuses = std::collections::HashMap::new();
            for (project_id, fingerprints) in issues {
                let fingerprints: Vec<&String> = fingerprints.iter().collect();
                for chunk in fingerprints.chunks(KEYS_PER_LOOKUP) {
                    statuses.extend(chunk.iter().map(|f| ((*project_id, f.to_string()), None)));
                    let sql = q(&format!(
                        "SELECT fingerprint, status FROM issues WHERE project_id = ? AND fingerprint IN {} \
                         ORDER BY fingerprint{}",
                        super::batch_counters::values(1, chunk.len()),
                        SQL.for_update
                    ));
                    let mut query = sqlx::query_as::<_, (String, String)>(&sql).persistent(false).bind(*project_id);
                    for fingerprint in chunk {
                        query = query.bind(*fingerprint);
                    }
                    for (fingerprint, status) in query.fetch_all(&mut *conn).await? {
                        statuses.insert((*project_id, fingerprint), Some(status));
                    }
                }
            }
            Ok(statuses)
        }

        /// Stores one event of the batch: counts it on its issue; its row
        /// waits in `state.pending` for the batch's end.
        #[allow(clippy::too_many_arguments)]
        async fn store_one<'a>(
            conn: &mut $conn,
            index: usize,
            e: &'a NewEvent,
            rules: &[AlertRule],
            quotas: &mut BatchQuotas,
            counters: &mut BatchCounters,
            state: &mut BatchState<'a>,
        ) -> Result<StoreOutcome, EventsFailure> {
            let event = &e.processed.event;
            // Over its quota an event is counted like any other; only its payload
            // (the events row) is not stored.
            let not_stored = quotas.charge(e.project_id, e.received_at).err();
            if !state.counted[index] {
                // Already stored, or earlier in this batch: the charge is
                // given back (its window may have moved on, as for any event).
                if not_stored.is_none() {
                    quotas.refund(e.project_id);
                }
                return Ok(StoreOutcome::Duplicate);
            }

            // A fingerprint merged into another issue is counted on that issue.
            let own = &e.processed.fingerprint.fingerprint;
            let mut fingerprint = state.merged.get(&(e.project_id, own.clone())).unwrap_or(own).clone();
            static PRIOR_STATUS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                format!("SELECT status FROM issues WHERE project_id = $1 AND fingerprint = $2{}", SQL.for_update)
            });
            // The issue's status before the event, and the issue after it.
            let (prior_status, issue) = match state.groups.get_mut(&(e.project_id, fingerprint.clone())) {
                Some(group) => {
                    if group.upserted.is_none() {
                        let issue = upsert_issue(conn, e.project_id, &fingerprint, &group.seen).await?;
                        let created = issue.event_count == group.seen.events;
                        // Another node created the issue, or merged its
                        // fingerprint, since the batch looked.
                        if group.new != created
                            || created && merged_fingerprint(conn, e.project_id, &fingerprint).await?.is_some()
                        {
                            return Err(EventsFailure::Raced);
                        }
                        let first = issue.event_count - group.seen.events + 1;
                        group.upserted = Some((issue, first));
                    }
                    let Some((issue, next)) = group.upserted.as_mut() else { unreachable!("upserted above") };
                    let mut counted = issue.clone();
                    counted.event_count = *next;
                    *next += 1;
                    (state.statuses.get(&(e.project_id, fingerprint.clone())).cloned().flatten(), counted)
                }
                None => loop {
                    let prior_status = match state.statuses.get(&(e.project_id, fingerprint.clone())) {
                        Some(status) => status.clone(),
                        // An issue the batch did not look at: the target of a
                        // merge that committed meanwhile.
                        None => sqlx::query_scalar(&PRIOR_STATUS)
                            .bind(e.project_id)
                            .bind(&fingerprint)
                            .fetch_optional(&mut *conn)
                            .await?,
                    };
                    let issue = upsert_issue(conn, e.project_id, &fingerprint, &IssueSeen::of(e)).await?;
                    if issue.event_count == 1 {
                        if let Some(target) = merged_meanwhile(conn, e.project_id, &fingerprint, issue.id).await? {
                            state.merged.insert((e.project_id, own.clone()), target.clone());
                            fingerprint = target;
                            continue;
                        }
                    }
                    break (prior_status, issue);
                },
            };
            let UpsertedIssue {
                id: issue_id,
                event_count,
                ignored_until_counts,
                status,
                resolved_kind,
                resolved_release,
                resolved_semver,
            } = issue;

            if not_stored.is_some() {
                *state.not_stored.entry(issue_id).or_default() += 1;
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
            let status_now = if regressed_by_release { "unresolved".to_string() } else { status };
            state.statuses.insert((e.project_id, fingerprint), Some(status_now));
            if regressed {
                let release = Some(event.release.as_str()).filter(|r| !r.is_empty());
                let detail = serde_json::json!({ "event_id": event.event_id, "release": release });
                insert_activity(conn, issue_id, None, ActivityKind::Regression, &detail, e.received_at).await?;
            }
            // An issue's first event and the event of each regression are kept by
            // retention whatever the limits. (A rate-limited event has no row.)
            if not_stored.is_none() {
                state.pending.push(PendingEvent { event: e, issue_id, kept: event_count == 1 || regressed });
            }
            if !rules.is_empty() {
                let facts = IssueFacts { created: event_count == 1, regressed };
                fire_alert_rules(conn, rules, e, issue_id, &facts, &state.pending).await?;
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

        /// Counts `seen` on the issue of `fingerprint`, created if new. A
        /// resolution bound to releases is left for `regress_by_release` to
        /// judge; any other resolved issue is unresolved again.
        async fn upsert_issue(
            conn: &mut $conn,
            project_id: i64,
            fingerprint: &str,
            seen: &IssueSeen<'_>,
        ) -> Result<UpsertedIssue, sqlx::Error> {
            // The hot path's statement, formatted once per backend.
            static UPSERT_ISSUE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                format!(
                    "INSERT INTO issues (project_id, fingerprint, title, culprit, level, status, first_seen, last_seen, \
                     event_count, first_release) \
                     VALUES ($1, $2, $3, $4, $5, 'unresolved', $6, $7, $8, NULLIF($9, '')) \
                     ON CONFLICT (project_id, fingerprint) DO UPDATE SET \
                       title = excluded.title, culprit = excluded.culprit, level = excluded.level, \
                       first_seen = {least}(issues.first_seen, excluded.first_seen), \
                       last_seen = {greatest}(issues.last_seen, excluded.last_seen), \
                       event_count = issues.event_count + excluded.event_count, \
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
            #[allow(clippy::type_complexity)]
            let row: (i64, i64, bool, String, Option<String>, Option<String>, bool) = sqlx::query_as(&UPSERT_ISSUE)
                .bind(project_id)
                .bind(fingerprint)
                .bind(SQL.text(seen.title))
                .bind(SQL.text(seen.culprit))
                .bind(seen.level)
                .bind(seen.first_seen)
                .bind(seen.last_seen)
                .bind(seen.events)
                .bind(SQL.text(seen.release))
                .fetch_one(&mut *conn)
                .await?;
            Ok(UpsertedIssue {
                id: row.0,
                event_count: row.1,
                ignored_until_counts: row.2,
                status: row.3,
                resolved_kind: row.4,
                resolved_release: row.5,
                resolved_semver: row.6,
            })
        }

        /// Inserts the batch's event rows, each with its issue and `kept`
        /// mark. Another node may have stored one of them since the batch
        /// looked (PostgreSQL): then fewer rows go in, and the batch fails
        /// to run again rather than count a duplicate.
        async fn insert_events(conn: &mut $conn, pending: &[PendingEvent<'_>]) -> Result<(), EventsFailure> {
            let mut inserted = 0;
            for chunk in pending.chunks(EVENT_ROWS_PER_STATEMENT) {
                let sql = q(&format!(
                    "INSERT INTO events (project_id, event_id, received_at, occurred_at, environment, release, level, \
                     user_key, payload, body, tags, user_email, tag_hashes, issue_id, kept) VALUES {} \
                     ON CONFLICT (project_id, event_id) DO NOTHING",
                    super::batch_counters::values(chunk.len(), 15)
                ));
                let mut query = sqlx::query(&sql).persistent(false);
                for p in chunk {
                    let e = p.event;
                    let event = &e.processed.event;
                    query = query
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
                        .bind(p.issue_id)
                        .bind(p.kept);
                }
                inserted += query.execute(&mut *conn).await?.rows_affected();
            }
            if inserted < pending.len() as u64 {
                return Err(EventsFailure::Raced);
            }
            Ok(())
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
                let mut query = sqlx::query_scalar(&sql).persistent(false);
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
