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
//! them). The issues neither resolved nor ignored are then counted by one
//! multi-row upsert for the whole batch ([`IssueGroup`]: nothing in such an
//! upsert depends on the order of an issue's events but what its group
//! sums); any other issue costs one upsert per event (regressions,
//! release-bound resolutions and ignores that end at a count are judged
//! event by event). Users are counted per batch with the other counters
//! (`batch_counters.rs`), but on an issue whose ignore ends at a number of
//! users, event by event. An event's row is inserted at the end of the
//! batch, with its issue and its `kept` mark known, by one multi-row
//! statement per [`EVENT_ROWS_PER_STATEMENT`] events. A batch's statements
//! are thus about a dozen whatever its size, plus one per event of a
//! resolved or ignored issue and one per alert rule an event may fire.

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

/// A batch's events counted on one issue that was neither resolved nor
/// ignored when the batch read it (and is locked on PostgreSQL): no event
/// of theirs can regress it or end an ignore, so one upsert counts them
/// all, before the first of them, and each event takes its place in the
/// count (`created` and `kept` for the first of a new issue, as one by one).
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
        use super::batch_rows::{BatchRows, Column};
        use super::ingest_sql::{
            BatchState, EventsFailure, IssueGroup, IssueSeen, PendingEvent, UpsertedIssue, EVENT_ROWS_PER_STATEMENT,
            KEYS_PER_LOOKUP,
        };

        /// What an issue's upsert does to an issue that exists: the events'
        /// counts added, a plain resolution reopened (one bound to releases
        /// is left for `regress_by_release` to judge).
        static ISSUE_UPSERT_CONFLICT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "ON CONFLICT (project_id, fingerprint) DO UPDATE SET \
                   title = excluded.title, culprit = excluded.culprit, level = excluded.level, \
                   first_seen = {least}(issues.first_seen, excluded.first_seen), \
                   last_seen = {greatest}(issues.last_seen, excluded.last_seen), \
                   event_count = issues.event_count + excluded.event_count, \
                   first_release = COALESCE(issues.first_release, excluded.first_release), \
                   is_regression = CASE WHEN issues.status = 'resolved' AND issues.resolved_kind IS NULL \
                     THEN TRUE ELSE issues.is_regression END, \
                   status = CASE WHEN issues.status = 'resolved' AND issues.resolved_kind IS NULL \
                     THEN 'unresolved' ELSE issues.status END",
                least = SQL.least,
                greatest = SQL.greatest,
            )
        });

        /// What an issue's upsert returns: [`UpsertedIssue`]'s fields.
        const ISSUE_UPSERT_RETURNS: &str = "id, event_count, \
            (ignore_until_count IS NOT NULL OR ignore_until_users IS NOT NULL), \
            status, resolved_kind, resolved_release, resolved_semver";

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
            upsert_groups(conn, &mut groups).await?;
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
                    let ids = BatchRows::of(vec![Column::Text(chunk.iter().map(|id| (*id).into()).collect())]);
                    let sql = q(&format!(
                        "SELECT event_id FROM events WHERE project_id = ? AND event_id {}",
                        ids.in_list(SQL.batch_arrays)
                    ));
                    let query = bind_rows(sqlx::query(&sql).persistent(SQL.batch_arrays).bind(project_id), &ids);
                    for row in query.fetch_all(&mut *conn).await? {
                        stored.insert((project_id, row.try_get(0)?));
                    }
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
                    let own = BatchRows::of(vec![Column::Text(chunk.iter().map(|f| (*f).into()).collect())]);
                    let sql = q(&format!(
                        "SELECT a.fingerprint, i.fingerprint FROM issue_aliases a JOIN issues i ON i.id = a.issue_id \
                         WHERE a.project_id = ? AND a.fingerprint {}",
                        own.in_list(SQL.batch_arrays)
                    ));
                    let query = bind_rows(sqlx::query(&sql).persistent(SQL.batch_arrays).bind(project_id), &own);
                    for row in query.fetch_all(&mut *conn).await? {
                        merged.insert((project_id, row.try_get(0)?), row.try_get(1)?);
                    }
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
                    let wanted = BatchRows::of(vec![Column::Text(chunk.iter().map(|f| f.as_str().into()).collect())]);
                    let sql = q(&format!(
                        "SELECT fingerprint, status FROM issues WHERE project_id = ? AND fingerprint {} \
                         ORDER BY fingerprint{}",
                        wanted.in_list(SQL.batch_arrays),
                        SQL.for_update
                    ));
                    let query = bind_rows(sqlx::query(&sql).persistent(SQL.batch_arrays).bind(*project_id), &wanted);
                    for row in query.fetch_all(&mut *conn).await? {
                        statuses.insert((*project_id, row.try_get(0)?), Some(row.try_get(1)?));
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
                    let Some((issue, next)) = group.upserted.as_mut() else {
                        return Err(EventsFailure::Database(sqlx::Error::Protocol(
                            "an issue group of the batch was not upserted".into(),
                        )));
                    };
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

            // An issue whose ignore ends at a number of users counts each
            // event's user before the next event is judged; any other
            // issue's users are counted once per batch (`BatchCounters`).
            if let Some(user_key) = e.processed.user_key.as_ref().filter(|_| ignored_until_counts) {
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

        /// Counts each group's events on its issue, created if new: one
        /// multi-row upsert per [`EVENT_ROWS_PER_STATEMENT`] issues, in
        /// project and fingerprint order (the order PostgreSQL nodes lock
        /// issues in). A group the batch found no issue for that exists now,
        /// or one it found that is new now, or a new issue whose fingerprint
        /// was merged meanwhile, lost a race to another node.
        async fn upsert_groups(
            conn: &mut $conn,
            groups: &mut std::collections::HashMap<(i64, String), IssueGroup<'_>>,
        ) -> Result<(), EventsFailure> {
            use sqlx::Row as _;
            let mut keys: Vec<(i64, String)> = groups.keys().cloned().collect();
            keys.sort_unstable();
            for chunk in keys.chunks(EVENT_ROWS_PER_STATEMENT) {
                let seen: Vec<&IssueSeen<'_>> = chunk.iter().map(|key| &groups[key].seen).collect();
                let rows = BatchRows::of(vec![
                    Column::Int(chunk.iter().map(|key| key.0).collect()),
                    Column::Text(chunk.iter().map(|key| key.1.as_str().into()).collect()),
                    Column::Text(seen.iter().map(|s| SQL.text(s.title)).collect()),
                    Column::Text(seen.iter().map(|s| SQL.text(s.culprit)).collect()),
                    Column::Text(seen.iter().map(|s| s.level.into()).collect()),
                    Column::Text(seen.iter().map(|_| "unresolved".into()).collect()),
                    Column::Int(seen.iter().map(|s| s.first_seen).collect()),
                    Column::Int(seen.iter().map(|s| s.last_seen).collect()),
                    Column::Int(seen.iter().map(|s| s.events).collect()),
                    Column::OptionalText(seen.iter().map(|s| Some(SQL.text(s.release)).filter(|r| !r.is_empty())).collect()),
                ]);
                let sql = q(&format!(
                    "INSERT INTO issues (project_id, fingerprint, title, culprit, level, status, first_seen, last_seen, \
                     event_count, first_release) {} {} \
                     RETURNING project_id, fingerprint, {}",
                    rows.insert_source(SQL.batch_arrays),
                    ISSUE_UPSERT_CONFLICT.as_str(),
                    ISSUE_UPSERT_RETURNS,
                ));
                let query = bind_rows(sqlx::query(&sql).persistent(SQL.batch_arrays), &rows);
                let returned = query.fetch_all(&mut *conn).await?;
                drop(seen);
                for row in returned {
                    let key: (i64, String) = (row.try_get(0)?, row.try_get(1)?);
                    let issue = UpsertedIssue {
                        id: row.try_get(2)?,
                        event_count: row.try_get(3)?,
                        ignored_until_counts: row.try_get(4)?,
                        status: row.try_get(5)?,
                        resolved_kind: row.try_get(6)?,
                        resolved_release: row.try_get(7)?,
                        resolved_semver: row.try_get(8)?,
                    };
                    let Some(group) = groups.get_mut(&key) else {
                        return Err(EventsFailure::Raced);
                    };
                    let created = issue.event_count == group.seen.events;
                    if group.new != created
                        || created && merged_fingerprint(conn, key.0, &key.1).await?.is_some()
                    {
                        return Err(EventsFailure::Raced);
                    }
                    let first = issue.event_count - group.seen.events + 1;
                    group.upserted = Some((issue, first));
                }
            }
            Ok(())
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
                     VALUES ($1, $2, $3, $4, $5, 'unresolved', $6, $7, $8, NULLIF($9, '')) {} RETURNING {}",
                    ISSUE_UPSERT_CONFLICT.as_str(),
                    ISSUE_UPSERT_RETURNS,
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
                let events: Vec<&NewEvent> = chunk.iter().map(|p| p.event).collect();
                let rows = BatchRows::of(vec![
                    Column::Int(events.iter().map(|e| e.project_id).collect()),
                    Column::Text(events.iter().map(|e| e.processed.event.event_id.as_str().into()).collect()),
                    Column::Int(events.iter().map(|e| e.received_at).collect()),
                    Column::Int(events.iter().map(|e| e.occurred_at).collect()),
                    Column::Text(events.iter().map(|e| SQL.text(&e.processed.event.environment)).collect()),
                    Column::Text(events.iter().map(|e| SQL.text(&e.processed.event.release)).collect()),
                    Column::Text(events.iter().map(|e| e.processed.event.level.as_str().into()).collect()),
                    Column::OptionalText(events.iter().map(|e| e.processed.user_key.as_deref().map(|t| SQL.text(t))).collect()),
                    Column::Text(
                        events.iter().map(|e| if e.body.is_some() { "".into() } else { e.payload.as_str().into() }).collect(),
                    ),
                    Column::OptionalBytes(events.iter().map(|e| e.body.as_deref()).collect()),
                    Column::Text(events.iter().map(|e| e.tags.as_str().into()).collect()),
                    Column::OptionalText(events.iter().map(|e| e.user_email.as_deref().map(|t| SQL.text(t))).collect()),
                    Column::OptionalBytes(events.iter().map(|e| e.tag_hashes.as_deref()).collect()),
                    Column::Int(chunk.iter().map(|p| p.issue_id).collect()),
                    Column::Bool(chunk.iter().map(|p| p.kept).collect()),
                ]);
                let sql = q(&format!(
                    "INSERT INTO events (project_id, event_id, received_at, occurred_at, environment, release, level, \
                     user_key, payload, body, tags, user_email, tag_hashes, issue_id, kept) {} \
                     ON CONFLICT (project_id, event_id) DO NOTHING",
                    rows.insert_source(SQL.batch_arrays)
                ));
                let query = bind_rows(sqlx::query(&sql).persistent(SQL.batch_arrays), &rows);
                inserted += query.execute(&mut *conn).await?.rows_affected();
            }
            if inserted < pending.len() as u64 {
                return Err(EventsFailure::Raced);
            }
            Ok(())
        }

        /// Which of `tokens` are live (neither revoked nor their project
        /// deleted), in one query.
        async fn live_tokens(conn: &mut $conn, tokens: &[&str]) -> Result<Vec<String>, sqlx::Error> {
            let tokens: Vec<&str> = tokens.iter().copied().filter(|t| SQL.can_hold(t)).collect();
            if tokens.is_empty() {
                return Ok(Vec::new());
            }
            let tokens = BatchRows::of(vec![Column::Text(tokens.into_iter().map(Into::into).collect())]);
            let sql =
                q(&format!("SELECT token FROM project_keys WHERE revoked_at IS NULL AND token {}", tokens.in_list(SQL.batch_arrays)));
            let query = bind_rows(sqlx::query(&sql).persistent(SQL.batch_arrays), &tokens);
            query.fetch_all(&mut *conn).await?.iter().map(|row| row.try_get(0)).collect()
        }

        /// The keys of `keys` that are not live, asked inside the batch's
        /// transaction (`Ingest::store_keyed_events`).
        async fn revoked_keys(conn: &mut $conn, keys: &[&str]) -> Result<Vec<String>, sqlx::Error> {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let live = live_tokens(conn, keys).await?;
            Ok(keys.iter().filter(|k| !live.iter().any(|l| l == *k)).map(|k| k.to_string()).collect())
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
                let mut conn = self.pool.acquire().await.map_err(unavailable("checking ingestion tokens"))?;
                live_tokens(&mut conn, tokens).await.map_err(unavailable("checking ingestion tokens"))
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

            async fn store_keyed_events(&self, batch: &[NewEvent], keys: &[&str]) -> StoreResult<KeyedBatch> {
                // How a batch's transaction runs is the backend's own.
                self.store_batch(batch, keys).await
            }

            fn set_installation_rate_limit(&self, limit: Option<RateLimit>) {
                self.installation_quota.set(limit);
            }
        }
    };
}

pub(super) use ingest_store;
