//! The one storage seam. Everything that reads or writes the database goes
//! through [`Store`], the sum of small traits named by job ([`Ingest`],
//! [`Accounts`], [`Organisations`], [`Projects`], [`IssueReads`], [`Triage`],
//! [`Alerting`], [`DataLifecycle`], [`PayloadDictionaries`], [`Maintenance`]),
//! whose methods are domain verbs; no SQL lives outside this folder.
//!
//! Both databases run one SQL text: each job's queries are written once in a
//! `*_sql.rs` module, and `sqlite.rs` and `postgres.rs` expand them all
//! (`sql_backend.rs`), keeping only what differs: connecting, pragmas and
//! migrations, how a batch's transaction runs, and [`Maintenance`]. What the
//! SQL itself must say differently is `dialect.rs`.

mod accounts_sql;
pub mod activity;
mod activity_sql;
pub mod alert_rules;
mod alert_sql;
mod batch_counters;
mod batch_rows;
mod dialect;
mod ingest_sql;
mod issues_sql;
mod key_sql;
mod lifecycle_sql;
mod merge_sql;
mod migrations;
mod organisations_sql;
pub mod postgres;
pub mod project_limits;
mod project_limits_sql;
mod projects_sql;
pub mod quota;
mod resolve_sql;
pub use quota::NotStoredReason;
mod quota_sql;
mod retention_sql;
mod rows;
mod search_sql;
pub use search_sql::TOTAL_CAP;
mod sign_in_limits;
mod sql_backend;
pub mod sqlite;
pub mod stored_payload;
mod triage_sql;

use async_trait::async_trait;
use booboo_core::ProcessedEvent;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

pub use activity::{Activity, ActivityKind, Assignment, PendingInvitation};
pub use alert_rules::{
    AlertChannel, AlertKind, AlertRule, AttemptResult, ChannelFailure, ChannelKind, DeliveryInfo, DueDelivery,
    HeldEmail, NewAlertRule, NewChannel, RuleFilters, Trigger,
};
pub use migrations::{migration_names, Backend};
pub use project_limits::{EffectiveLimits, LimitChange, LimitDefaults, ProjectLimits, ProjectLimitsPatch, RateLimit};
pub use sign_in_limits::{SignInLimits, SignInReservation};

/// A failure of the storage layer, with what was being done.
#[derive(Debug, Clone)]
pub enum StoreError {
    /// The database could not be reached or answered with an error; worth
    /// retrying later.
    Unavailable(String),
    /// A uniqueness or reference rule refused the write.
    Conflict(String),
    /// The request names something that does not exist.
    NotFound(String),
    /// The database is in a state this binary cannot work with.
    Incompatible(String),
    /// The viewer may see the thing but not change it this way.
    Forbidden(String),
    /// The database has no space left to write: nothing of the failed write
    /// was kept; it works again once space is freed.
    DiskFull(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(m) => write!(f, "database unavailable: {m}"),
            StoreError::DiskFull(m) => write!(f, "disk full: {m}"),
            StoreError::Conflict(m)
            | StoreError::NotFound(m)
            | StoreError::Incompatible(m)
            | StoreError::Forbidden(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for StoreError {}

pub type StoreResult<T> = Result<T, StoreError>;

/// Who is asking: reads are limited to the organisations a user belongs to,
/// unless they administer the installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    pub user_id: i64,
    pub is_admin: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub is_admin: bool,
    #[serde(skip)]
    pub password_hash: String,
}

impl User {
    pub fn viewer(&self) -> Viewer {
        Viewer { user_id: self.id, is_admin: self.is_admin }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Project {
    pub id: i64,
    pub org_slug: String,
    pub slug: String,
    pub name: String,
    pub created_at: i64,
    /// When a client last said hello (the handshake), and which SDK it was.
    pub connected_at: Option<i64>,
    pub connected_sdk: Option<String>,
    pub last_event_at: Option<i64>,
    /// Its own limits (not the effective ones: those need the installation's
    /// defaults); serialised flat, as `max_events`, `retention_days`, …
    #[serde(flatten)]
    pub limits: ProjectLimits,
}

/// A project's ingestion key: the token inside its DSN.
#[derive(Clone, Serialize)]
pub struct ProjectKey {
    pub id: i64,
    pub project_id: i64,
    pub token: String,
    pub label: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl fmt::Debug for ProjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectKey").field("id", &self.id).field("project_id", &self.project_id).finish_non_exhaustive()
    }
}

/// What ingestion needs to know about the project a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestTarget {
    pub project_id: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssueStatus {
    Unresolved,
    Resolved,
    Ignored,
}

impl IssueStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueStatus::Unresolved => "unresolved",
            IssueStatus::Resolved => "resolved",
            IssueStatus::Ignored => "ignored",
        }
    }

    pub fn parse(text: &str) -> Option<IssueStatus> {
        match text {
            "unresolved" => Some(IssueStatus::Unresolved),
            "resolved" => Some(IssueStatus::Resolved),
            "ignored" => Some(IssueStatus::Ignored),
            _ => None,
        }
    }
}

/// How long an ignored issue stays ignored, as asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreCondition {
    /// Until someone changes its status.
    Forever,
    /// For this many milliseconds.
    For { ms: i64 },
    /// Until this many more events.
    Events(i64),
    /// Until this many more distinct users.
    Users(i64),
}

/// The longest timed ignore: a year, in minutes.
pub const MAX_IGNORE_MINUTES: i64 = 525_600;
/// The most events or users an ignore can wait for.
pub const MAX_IGNORE_COUNT: i64 = 1_000_000_000;

impl IgnoreCondition {
    /// The condition asked for by at most one of `minutes`, `count` (more
    /// events) and `users` (more distinct users); none means forever. The
    /// error names the field and says what it accepts.
    pub fn from_parts(
        minutes: Option<i64>,
        count: Option<i64>,
        users: Option<i64>,
    ) -> Result<IgnoreCondition, (&'static str, String)> {
        let given = [minutes.is_some(), count.is_some(), users.is_some()].iter().filter(|g| **g).count();
        if given > 1 {
            return Err(("ignore", "give one of minutes, count or users, not several".into()));
        }
        let check = |field: &'static str, n: i64, max: i64| {
            if (1..=max).contains(&n) {
                Ok(n)
            } else {
                Err((field, format!("{field} must be a whole number from 1 to {max}, got {n}")))
            }
        };
        Ok(match (minutes, count, users) {
            (Some(m), _, _) => IgnoreCondition::For { ms: check("minutes", m, MAX_IGNORE_MINUTES)? * 60_000 },
            (_, Some(n), _) => IgnoreCondition::Events(check("count", n, MAX_IGNORE_COUNT)?),
            (_, _, Some(n)) => IgnoreCondition::Users(check("users", n, MAX_IGNORE_COUNT)?),
            _ => IgnoreCondition::Forever,
        })
    }
}

impl IgnoreCondition {
    /// What the store keeps for this condition set at `now`: the time it
    /// ends, and how many more events or users end it.
    pub fn targets(self, now: i64) -> (Option<i64>, Option<i64>, Option<i64>) {
        match self {
            IgnoreCondition::Forever => (None, None, None),
            IgnoreCondition::For { ms } => (Some(now.saturating_add(ms)), None, None),
            IgnoreCondition::Events(n) => (None, Some(n), None),
            IgnoreCondition::Users(n) => (None, None, Some(n)),
        }
    }
}

/// When an ignored issue's ignore ends, as stored: absolute targets, so the
/// writer compares without arithmetic. All `None` while ignored forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IgnoreUntil {
    /// A time (milliseconds since the epoch).
    pub at: Option<i64>,
    /// The event count that ends it.
    pub count: Option<i64>,
    /// The distinct-user count that ends it.
    pub users: Option<i64>,
}

/// How to resolve an issue, as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Resolved now: its next event, from any release, is a regression.
    Now,
    /// Fixed in the release after the project's latest one (by the release
    /// order of `booboo_core::release_order`) at this moment: events from
    /// that release or older are not regressions.
    NextRelease,
    /// Fixed in the project's latest release at this moment: events from it
    /// or a later one are regressions. `Conflict` while the project has none.
    CurrentRelease,
    /// Fixed in this release, seen or not yet: events from it or a later one
    /// are regressions, older ones are not.
    InRelease(String),
}

impl Resolution {
    /// Reads `now`, `next_release`, `current_release` or the name of a
    /// release, which need not have been seen yet (a fix ships in a future
    /// release) but must be a name a client could send.
    pub fn parse(text: &str) -> Result<Resolution, String> {
        Ok(match text {
            "now" => Resolution::Now,
            "next_release" => Resolution::NextRelease,
            "current_release" => Resolution::CurrentRelease,
            release => {
                booboo_core::release_order::check_release_name(release)?;
                Resolution::InRelease(release.to_string())
            }
        })
    }
}

/// Which kind of release-bound resolution an issue has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolvedInKind {
    NextRelease,
    CurrentRelease,
    Release,
}

impl ResolvedInKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResolvedInKind::NextRelease => "next_release",
            ResolvedInKind::CurrentRelease => "current_release",
            ResolvedInKind::Release => "release",
        }
    }

    pub fn parse(text: &str) -> Option<ResolvedInKind> {
        [ResolvedInKind::NextRelease, ResolvedInKind::CurrentRelease, ResolvedInKind::Release]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// A resolved issue's release-bound resolution, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedIn {
    pub kind: ResolvedInKind,
    /// For `next_release`, the latest release when it was resolved (events
    /// from later ones regress; `None` when the project had none, so any
    /// event with a release does); otherwise the release it was fixed in.
    pub release: Option<String>,
    /// Whether releases are compared as semantic versions (decided when it
    /// was resolved: all the project's releases parsed as such), else by
    /// when the project first saw them.
    pub semver: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Issue {
    pub id: i64,
    pub project_id: i64,
    pub title: String,
    pub culprit: String,
    pub level: String,
    pub status: IssueStatus,
    pub is_regression: bool,
    /// Every event counted, stored or not.
    pub count: i64,
    /// Payloads of these events the store holds: `count` less `not_stored`.
    pub stored: i64,
    /// Counted events whose payload is not (or no longer) stored, by reason.
    pub not_stored: NotStoredCounts,
    pub users: i64,
    pub first_seen: i64,
    pub last_seen: i64,
    pub first_release: Option<String>,
    pub fingerprint: String,
    /// When an ignored issue's ignore ends.
    pub ignore_until: IgnoreUntil,
    /// The release a resolved issue was resolved in, if it was resolved
    /// with respect to releases.
    pub resolved_in: Option<ResolvedIn>,
    /// The e-mail of the member the issue is assigned to.
    pub assignee: Option<String>,
    /// Names of the environments and releases the issue was seen in.
    pub environments: Vec<String>,
    pub releases: Vec<String>,
}

/// An issue's counted events whose payload was not kept, by reason.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct NotStoredCounts {
    /// Over the project's rate limit or spike guard: never stored.
    pub rate_limit: i64,
    /// Removed later by retention.
    pub retention: i64,
}

/// Counts of one value (an environment, a release, a tag value) on an issue.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ValueCount {
    pub value: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TagCounts {
    pub key: String,
    pub values: Vec<ValueCount>,
}

/// An issue with everything the issue page and `GET /issues/{id}` show.
#[derive(Debug, Clone, Serialize)]
pub struct IssueDetail {
    #[serde(flatten)]
    pub issue: Issue,
    pub environment_counts: Vec<ValueCount>,
    pub release_counts: Vec<ValueCount>,
    pub tags: Vec<TagCounts>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IssueSort {
    #[default]
    LastSeen,
    FirstSeen,
    Events,
    Users,
}

impl IssueSort {
    pub fn parse(text: &str) -> Option<IssueSort> {
        match text {
            "last_seen" => Some(IssueSort::LastSeen),
            "first_seen" => Some(IssueSort::FirstSeen),
            "events" => Some(IssueSort::Events),
            "users" => Some(IssueSort::Users),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct IssueFilter {
    pub environment: Option<String>,
    pub release: Option<String>,
    /// `None` means every status.
    pub status: Option<IssueStatus>,
    pub level: Option<String>,
    pub query: Option<String>,
    pub sort: IssueSort,
}

/// A parsed search of a project's issues (the language of `docs/search.md`)
/// and the order of the list.
#[derive(Debug, Clone, Default)]
pub struct IssueSearch {
    pub query: booboo_core::search_query::Query,
    pub sort: IssueSort,
    /// Without an `is:` term the list shows unresolved issues only, unless
    /// this is set (the dashboard's and the API's `status=all`).
    pub any_status: bool,
}

impl IssueSearch {
    /// Adds the older separate parameters (`status`, `environment`,
    /// `release`, `level`) to a parsed query, as the terms they stand for.
    /// `status` applies only when the query has no `is:` status term.
    pub fn with_params(
        mut self,
        status: Option<Option<IssueStatus>>,
        environment: Option<&str>,
        release: Option<&str>,
        level: Option<&str>,
    ) -> IssueSearch {
        use booboo_core::search_query::{EventField, Filter, Status};
        let has_status = self.query.filters.iter().any(|f| matches!(f, Filter::Status { .. }));
        match status {
            Some(Some(status)) if !has_status => {
                let status = match status {
                    IssueStatus::Unresolved => Status::Unresolved,
                    IssueStatus::Resolved => Status::Resolved,
                    IssueStatus::Ignored => Status::Ignored,
                };
                self.query.filters.push(Filter::Status { negated: false, status });
            }
            Some(None) => self.any_status = true,
            _ => {}
        }
        for (field, value) in [(EventField::Environment, environment), (EventField::Release, release)] {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                self.query.filters.push(Filter::Event { negated: false, field, values: vec![value.to_string()] });
            }
        }
        if let Some(level) = level.filter(|l| !l.is_empty()) {
            if let Some(known) = booboo_core::search_query::LEVELS.iter().find(|l| **l == level) {
                self.query.filters.push(Filter::Level { negated: false, levels: vec![known] });
            }
        }
        self
    }
}

/// Where the counts of a searched list come from (see `docs/search.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CountSource {
    /// No term on events: the issue's own counts, of every event.
    AllEvents,
    /// One term on an environment, a release or a tag: event counts from the
    /// per-issue counters (every event ever received, stored or not); users
    /// and the chart from the stored events.
    Counters,
    /// Anything else on events: counts, users and the chart from the stored
    /// events that match.
    StoredEvents,
}

/// One issue of a searched list, with its counts over the matching events.
#[derive(Debug, Clone, Serialize)]
pub struct IssueHit {
    pub issue: Issue,
    pub count: i64,
    pub users: i64,
}

/// A page of a searched list.
#[derive(Debug, Clone)]
pub struct SearchResults {
    pub hits: PageOf<IssueHit>,
    /// How many issues match in all; with `total_exact` false, more than
    /// that many (a list read in index order stops counting there:
    /// `search_sql::TOTAL_CAP`).
    pub total: i64,
    pub total_exact: bool,
    pub counts: CountSource,
    /// Matching events per hour since the `since_hour` asked for, for the
    /// listed issues.
    pub hourly: Vec<HourCount>,
}

/// Offset pagination: simple, and stable enough for lists a person pages
/// through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: i64,
    pub limit: i64,
}

/// One page of results and whether there is another.
#[derive(Debug, Clone)]
pub struct PageOf<T> {
    pub items: Vec<T>,
    pub next_offset: Option<i64>,
}

impl<T> PageOf<T> {
    /// Builds a page from a query that fetched `limit + 1` rows.
    pub fn from_overfetch(mut rows: Vec<T>, page: Page) -> Self {
        let more = rows.len() as i64 > page.limit;
        rows.truncate(page.limit as usize);
        PageOf { items: rows, next_offset: more.then_some(page.offset + page.limit) }
    }
}

/// A stored event as the API returns it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub event_id: String,
    pub issue_id: i64,
    pub project_id: i64,
    pub received_at: i64,
    /// The normalised event as JSON text, exactly as stored.
    pub payload: String,
}

/// Where an export of a project stops: see [`DataLifecycle::export_marks`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportMarks {
    pub last_issue_id: i64,
    pub last_event_row: i64,
}

/// A signed-in browser: found by the hash of its cookie.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: i64,
    /// The token every form of this session carries (CSRF).
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// An organisation the viewer can see, with the viewer's role in it.
/// Installation administrators are admins everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgAccess {
    pub org_slug: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub user_id: i64,
    pub email: String,
    pub role: Role,
}

/// An invitation to join an organisation, redeemed once through a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invitation {
    pub org_slug: String,
    pub email: String,
    pub role: Role,
    pub expires_at: i64,
}

/// What one pruning pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub sessions: u64,
    /// Setup links, password links and invitations.
    pub links: u64,
    pub sign_in_limits: u64,
}

/// An API token as its owner sees it: never the token itself.
#[derive(Debug, Clone, Serialize)]
pub struct ApiTokenInfo {
    pub id: i64,
    pub label: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// Events of one issue in one hour (`hour` = milliseconds / 3 600 000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourCount {
    pub issue_id: i64,
    pub hour: i64,
    pub count: i64,
}

/// The values a project's issue list can be filtered by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectFacets {
    pub environments: Vec<String>,
    pub releases: Vec<String>,
}

/// One event of an issue with its neighbours, for older/newer navigation.
#[derive(Debug, Clone)]
pub struct EventInIssue {
    pub event: StoredEvent,
    /// The next older and the next newer event of the same issue.
    pub older: Option<String>,
    pub newer: Option<String>,
}

/// One event on its way into the store, with the time it arrived.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub project_id: i64,
    pub received_at: i64,
    pub occurred_at: i64,
    pub processed: ProcessedEvent,
    /// The normalised event serialised once, off the writer's path.
    pub payload: String,
    /// `payload` compressed as it is stored (`stored_payload`), also off
    /// the writer's path; `None` stores the JSON as text.
    pub body: Option<Vec<u8>>,
    /// The event's tags as a JSON object and its user's e-mail, for the
    /// columns searches read (`stored_payload`).
    pub tags: String,
    pub user_email: Option<String>,
    /// A hash of each tag, for the filter index (`stored_payload`); `None`
    /// when the event has more tags than are hashed.
    pub tag_hashes: Option<Vec<u8>>,
}

impl NewEvent {
    /// An event ready for the writer: serialised and compressed here, on
    /// the caller's thread, so the single writer only writes.
    pub fn new(
        codec: &stored_payload::PayloadCodec,
        project_id: i64,
        received_at: i64,
        occurred_at: i64,
        processed: ProcessedEvent,
    ) -> NewEvent {
        let payload = serde_json::to_string(&processed.event).unwrap_or_else(|_| "{}".into());
        let body = codec.compress(&payload);
        let tags = stored_payload::tags_column(&processed.event);
        let user_email = stored_payload::user_email_column(&processed.event);
        let tag_hashes = stored_payload::tag_hashes_column(&processed.event);
        NewEvent { project_id, received_at, occurred_at, processed, payload, body, tags, user_email, tag_hashes }
    }
}

/// What happened to one event of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOutcome {
    Stored {
        issue_id: i64,
    },
    /// An event with this `(project, event_id)` was already stored.
    Duplicate,
    /// Counted on its issue like a stored event, but over the project's
    /// quota: its payload was not stored.
    NotStored {
        issue_id: i64,
        reason: NotStoredReason,
    },
}

impl StoreOutcome {
    /// The issue the event was counted on; `None` for a duplicate.
    pub fn issue_id(&self) -> Option<i64> {
        match self {
            StoreOutcome::Stored { issue_id } | StoreOutcome::NotStored { issue_id, .. } => Some(*issue_id),
            StoreOutcome::Duplicate => None,
        }
    }
}

/// One stored event as retention weighs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventAge {
    /// The event's row id.
    pub id: i64,
    pub received_at: i64,
    /// An issue's first event or the event of a regression: never evicted.
    pub kept: bool,
}

/// The most issues one merge takes in: a page of the issue list and more.
pub const MAX_MERGE_SOURCES: usize = 100;

/// A merge as asked for: the issue kept and the issues merged into it,
/// checked (some, not too many, the kept one not among them, no repeats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueMerge {
    target: i64,
    sources: Vec<i64>,
}

impl IssueMerge {
    /// The error says what is wrong with the request, for a person to fix.
    pub fn new(target: i64, sources: &[i64]) -> Result<IssueMerge, String> {
        let mut sorted = sources.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.is_empty() {
            return Err("name at least one issue to merge into the target".into());
        }
        if sorted.len() > MAX_MERGE_SOURCES {
            return Err(format!("at most {MAX_MERGE_SOURCES} issues can be merged at once, got {}", sorted.len()));
        }
        if sorted.contains(&target) {
            return Err(format!("issue {target} is the target; it cannot also be merged into itself"));
        }
        Ok(IssueMerge { target, sources: sorted })
    }

    /// The issue that is kept.
    pub fn target(&self) -> i64 {
        self.target
    }

    /// The issues merged into it, in id order.
    pub fn sources(&self) -> &[i64] {
        &self.sources
    }
}

/// The database itself rather than what it holds: which backend, whether it
/// answers and can write, its planner statistics, its size and free space,
/// a copy of it. These are what differ most between the backends, so each
/// implements this trait in its own file (`sqlite.rs`, `postgres.rs`).
#[async_trait]
pub trait Maintenance: Send + Sync + 'static {
    /// Which backend this is, for logs and `/metrics`.
    fn backend(&self) -> Backend;

    /// A cheap round trip, for `/healthz`.
    async fn ping(&self) -> StoreResult<()>;

    /// Whether a write of some size would succeed now: asked by `/healthz`
    /// after a write failed for want of disk, to learn that space is back
    /// without waiting for the next event. [`StoreError::DiskFull`] if not.
    async fn check_writable(&self) -> StoreResult<()>;

    /// Writes a consistent copy of the whole database to a new file at
    /// `dest`, while ingest goes on. SQLite only; PostgreSQL has `pg_dump`.
    async fn backup_to(&self, dest: &std::path::Path) -> StoreResult<()>;

    /// Brings the query planner's statistics up to date where the database
    /// does not do it by itself (SQLite's `PRAGMA optimize`; PostgreSQL's
    /// autovacuum analyses on its own). Cheap when little changed.
    async fn refresh_planner_statistics(&self) -> StoreResult<()>;

    /// The bytes the database uses now, as the disk budget counts them.
    async fn used_bytes(&self) -> StoreResult<u64>;

    /// Makes the space of removed events reusable: SQLite returns free pages
    /// to the file system in small steps (`incremental_vacuum`), keeping
    /// `keep_bytes` of them for new events; PostgreSQL runs `VACUUM events`.
    async fn reclaim_space(&self, keep_bytes: u64) -> StoreResult<()>;
}

/// How stored payloads are compressed (`stored_payload.rs`): the codec
/// ingest compresses with, and the zstd dictionaries it is trained into.
#[async_trait]
pub trait PayloadDictionaries: Send + Sync + 'static {
    /// How this store compresses new payloads: ingest compresses each
    /// event with it before the writer sees it ([`NewEvent::new`]).
    fn payload_codec(&self) -> &stored_payload::PayloadCodec;

    /// Every payload dictionary stored, oldest first.
    async fn payload_dictionaries(&self) -> StoreResult<Vec<stored_payload::PayloadDictionary>>;

    /// Stores a payload dictionary (once per id).
    async fn add_payload_dictionary(&self, dictionary: &stored_payload::PayloadDictionary) -> StoreResult<()>;

    /// The newest stored payloads as JSON, up to `limit` and about
    /// `max_bytes` in all: samples to train a dictionary on.
    async fn payload_samples(&self, limit: i64, max_bytes: usize) -> StoreResult<Vec<String>>;
}

/// What [`Ingest::store_keyed_events`] did with a batch.
#[derive(Debug)]
pub enum KeyedBatch {
    /// Committed: each event's outcome, in the batch's order.
    Stored(Vec<StoreOutcome>),
    /// Nothing stored: these keys of the batch are no longer live.
    KeysRevoked(Vec<String>),
}

/// The ingest path: which project a token sends to, and the writer's one
/// verb, a batch of events stored in one transaction (`ingest_sql.rs`).
#[async_trait]
pub trait Ingest: Send + Sync + 'static {
    /// The project an ingestion token may send to, if the token is live.
    async fn ingest_target(&self, token: &str) -> StoreResult<Option<IngestTarget>>;

    /// Which of `tokens` are live now (neither revoked nor deleted): one
    /// query for a batch's keys (`ingest_keys.rs`).
    async fn live_ingest_tokens(&self, tokens: &[&str]) -> StoreResult<Vec<String>>;

    async fn record_handshake(&self, project_id: i64, sdk: &str, at: i64) -> StoreResult<()>;

    /// Stores a batch in one transaction. Either every event of the batch is
    /// committed (outcomes in order) or none is (an error).
    async fn store_events(&self, batch: &[NewEvent]) -> StoreResult<Vec<StoreOutcome>> {
        match self.store_keyed_events(batch, &[]).await? {
            KeyedBatch::Stored(outcomes) => Ok(outcomes),
            KeyedBatch::KeysRevoked(keys) => {
                Err(StoreError::Conflict(format!("{} ingestion key(s) of the batch were revoked", keys.len())))
            }
        }
    }

    /// The same for a batch whose events came with the ingestion keys
    /// `keys` (its distinct ones): inside the batch's transaction, before
    /// anything is stored, checks that every one is still live, and if one
    /// is not, stores nothing and names those that are not. One transaction
    /// per batch, the check included.
    async fn store_keyed_events(&self, batch: &[NewEvent], keys: &[&str]) -> StoreResult<KeyedBatch>;

    /// Sets the installation-wide rate limit, on all projects together
    /// (`None`: off), besides each project's own. Applies from the next
    /// batch; set once at start-up from the config.
    fn set_installation_rate_limit(&self, limit: Option<RateLimit>);
}

/// People and how they prove who they are: users, the first-run setup link,
/// sessions, passwords and password links, sign-in limits and API tokens
/// (`accounts_sql.rs`).
#[async_trait]
pub trait Accounts: Send + Sync + 'static {
    async fn create_user(&self, email: &str, password_hash: &str, is_admin: bool, at: i64) -> StoreResult<User>;

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;

    async fn user_count(&self) -> StoreResult<i64>;

    async fn create_api_token(&self, user_id: i64, token_hash: &str, label: &str, at: i64) -> StoreResult<()>;

    async fn user_for_api_token(&self, token_hash: &str) -> StoreResult<Option<User>>;

    /// Remembers a setup link's token (hashed) while no user exists.
    async fn add_setup_token(&self, token_hash: &str, at: i64, expires_at: i64) -> StoreResult<()>;

    /// Whether a setup link is still good: it is known, unexpired, and no
    /// user exists.
    async fn setup_token_valid(&self, token_hash: &str, now: i64) -> StoreResult<bool>;

    /// Creates the first administrator through a setup link and forgets
    /// every setup link. `NotFound` for an unknown or expired link,
    /// `Conflict` once a user exists.
    async fn create_first_admin(
        &self,
        setup_token_hash: &str,
        email: &str,
        password_hash: &str,
        at: i64,
    ) -> StoreResult<User>;

    async fn create_session(&self, token_hash: &str, user_id: i64, session: &Session) -> StoreResult<()>;

    /// The live session a cookie's hash names, with its user.
    async fn session(&self, token_hash: &str, now: i64) -> StoreResult<Option<(User, Session)>>;

    async fn end_session(&self, token_hash: &str) -> StoreResult<()>;

    /// Changes a password, ends every other session of that user (all of
    /// them when `keep_session_hash` is empty) and voids their unused
    /// password links.
    async fn set_password(&self, user_id: i64, password_hash: &str, keep_session_hash: &str) -> StoreResult<()>;

    /// Reserves one password check for a sign-in from `address_key` to
    /// `account_key`, atomically: the check is counted before the password
    /// is verified, so parallel requests cannot all slip under a limit.
    async fn reserve_sign_in(
        &self,
        address_key: &str,
        account_key: &str,
        limits: &SignInLimits,
        now: i64,
    ) -> StoreResult<SignInReservation>;

    /// A reserved check found the right password: the address gets its
    /// check back and the account's count starts again.
    async fn sign_in_succeeded(&self, address_key: &str, account_key: &str) -> StoreResult<()>;

    /// Remembers a one-time link (hashed) that lets a user choose a password.
    async fn create_password_link(&self, token_hash: &str, user_id: i64, at: i64, expires_at: i64) -> StoreResult<()>;

    /// The user an unused, unexpired password link is for.
    async fn password_link(&self, token_hash: &str, now: i64) -> StoreResult<Option<User>>;

    /// Uses a password link up: sets the password, ends every session of the
    /// user and voids their other links. `NotFound` if the link is unknown,
    /// used or expired.
    async fn use_password_link(&self, token_hash: &str, password_hash: &str, now: i64) -> StoreResult<User>;

    /// Deletes expired sessions, setup links, password links, invitations and
    /// sign-in counters whose window has ended.
    async fn prune_expired(&self, now: i64) -> StoreResult<Pruned>;

    async fn api_tokens_of(&self, user_id: i64) -> StoreResult<Vec<ApiTokenInfo>>;

    /// Revokes one of the user's own tokens; whether it was theirs and live.
    async fn revoke_api_token(&self, user_id: i64, token_id: i64, at: i64) -> StoreResult<bool>;
}

/// Organisations and who belongs to them: memberships, roles and
/// invitations (`organisations_sql.rs`).
#[async_trait]
pub trait Organisations: Send + Sync + 'static {
    /// Adds a membership or changes its role.
    async fn set_membership(&self, org_slug: &str, user_id: i64, role: Role) -> StoreResult<()>;

    async fn organisations_for(&self, viewer: Viewer) -> StoreResult<Vec<OrgAccess>>;

    /// The viewer's role in an organisation; `None` if they cannot see it
    /// (or it does not exist).
    async fn role_in(&self, viewer: Viewer, org_slug: &str) -> StoreResult<Option<Role>>;

    /// Members of an organisation the viewer can see, by email.
    async fn members_of(&self, viewer: Viewer, org_slug: &str) -> StoreResult<Option<Vec<Member>>>;

    /// Removes a membership; whether there was one.
    async fn remove_membership(&self, org_slug: &str, user_id: i64) -> StoreResult<bool>;

    async fn create_invitation(&self, token_hash: &str, invitation: &Invitation, at: i64) -> StoreResult<()>;

    /// An unused, unexpired invitation.
    async fn invitation(&self, token_hash: &str, now: i64) -> StoreResult<Option<Invitation>>;

    /// Creates the invited user (or finds them by email, keeping their
    /// password), makes them a member and uses the invitation up; the flag
    /// says whether the user was created now. `NotFound` if the invitation is
    /// unknown, used or expired.
    async fn accept_invitation(&self, token_hash: &str, password_hash: &str, now: i64) -> StoreResult<(User, bool)>;

    /// An organisation's invitations not yet used nor expired at `now`,
    /// newest first: `None` if the viewer cannot see the organisation,
    /// `Forbidden` unless they administer it.
    async fn pending_invitations(
        &self,
        viewer: Viewer,
        org_slug: &str,
        now: i64,
    ) -> StoreResult<Option<Vec<PendingInvitation>>>;

    /// Revokes an organisation's unused invitations to one address (their
    /// links stop working); whether there was any. `Forbidden` unless the
    /// viewer administers the organisation.
    async fn revoke_invitation(&self, viewer: Viewer, org_slug: &str, email: &str) -> StoreResult<bool>;
}

/// Projects, their ingestion keys and their limits (`projects_sql.rs`).
#[async_trait]
pub trait Projects: Send + Sync + 'static {
    /// Creates the organisation if needed and the project with its first key.
    /// `Conflict` if the project exists.
    async fn create_project(
        &self,
        org_slug: &str,
        project_slug: &str,
        token: &str,
        at: i64,
    ) -> StoreResult<(Project, ProjectKey)>;

    /// A project with its live keys, looked up without access checks (CLI).
    async fn project_with_keys(
        &self,
        org_slug: &str,
        project_slug: &str,
    ) -> StoreResult<Option<(Project, Vec<ProjectKey>)>>;

    async fn projects_for(&self, viewer: Viewer) -> StoreResult<Vec<Project>>;

    async fn project_for(&self, viewer: Viewer, org_slug: &str, project_slug: &str) -> StoreResult<Option<Project>>;

    /// Creates a project for a signed-in user. A new organisation gets the
    /// viewer as its admin; in an existing one the viewer must be an admin
    /// (`Forbidden` otherwise). `Conflict` if the project exists.
    async fn create_project_for(
        &self,
        viewer: Viewer,
        org_slug: &str,
        project_slug: &str,
        token: &str,
        at: i64,
    ) -> StoreResult<(Project, ProjectKey)>;

    /// Every key of a project, revoked ones too, oldest first.
    async fn project_keys(&self, viewer: Viewer, project_id: i64) -> StoreResult<Option<Vec<ProjectKey>>>;

    async fn add_project_key(
        &self,
        viewer: Viewer,
        project_id: i64,
        token: &str,
        label: &str,
        at: i64,
    ) -> StoreResult<Option<ProjectKey>>;

    /// Revokes a key: its token is refused from then on. Whether it was live.
    async fn revoke_project_key(&self, viewer: Viewer, project_id: i64, key_id: i64, at: i64) -> StoreResult<bool>;

    /// Every project's own limits (not the effective ones), by project id;
    /// cheap enough for an engine to call on every tick, so none caches them.
    async fn project_limits_all(&self) -> StoreResult<Vec<(i64, ProjectLimits)>>;

    /// Changes a project's limits (an organisation admin only) and returns
    /// them as they now are; `None` when the viewer cannot see the project.
    /// Fields the patch leaves are kept, even against a concurrent change.
    async fn set_project_limits(
        &self,
        viewer: Viewer,
        project_id: i64,
        patch: &ProjectLimitsPatch,
    ) -> StoreResult<Option<ProjectLimits>>;

    /// Deletes a key, live or revoked: its token is refused from then on and
    /// it leaves the project's list. Whether the viewer could see the project
    /// and the key was one of its keys. The caller checks the viewer
    /// administers the organisation, as for [`Projects::revoke_project_key`].
    async fn delete_project_key(&self, viewer: Viewer, project_id: i64, key_id: i64) -> StoreResult<bool>;
}

/// Reading issues and events as the API and the dashboard show them: lists,
/// search, details, charts and event navigation (`issues_sql.rs`). Every
/// read takes a [`Viewer`]: another organisation's ids answer as not found.
#[async_trait]
pub trait IssueReads: Send + Sync + 'static {
    async fn list_issues(
        &self,
        viewer: Viewer,
        project_id: i64,
        filter: &IssueFilter,
        page: Page,
    ) -> StoreResult<PageOf<Issue>>;

    async fn issue_detail(&self, viewer: Viewer, issue_id: i64) -> StoreResult<Option<IssueDetail>>;

    /// Events of an issue, newest first.
    async fn issue_events(&self, viewer: Viewer, issue_id: i64, page: Page)
        -> StoreResult<Option<PageOf<StoredEvent>>>;

    async fn event(&self, viewer: Viewer, event_id: &str) -> StoreResult<Option<StoredEvent>>;

    /// Events per hour since `since_hour` for some issues of one project.
    async fn issue_hourly(
        &self,
        viewer: Viewer,
        project_id: i64,
        issue_ids: &[i64],
        since_hour: i64,
    ) -> StoreResult<Vec<HourCount>>;

    /// The environments and releases a project's issues were seen in.
    async fn project_facets(&self, viewer: Viewer, project_id: i64) -> StoreResult<ProjectFacets>;

    /// One event of an issue (the latest when `event_id` is `None`) with its
    /// older and newer neighbours.
    async fn issue_event(
        &self,
        viewer: Viewer,
        issue_id: i64,
        event_id: Option<&str>,
    ) -> StoreResult<Option<EventInIssue>>;

    /// The issue that an issue merged away now lives on as, for links to it.
    async fn merged_issue_target(&self, viewer: Viewer, issue_id: i64) -> StoreResult<Option<i64>>;

    /// A project's issues that match a search, a page of them with counts,
    /// users and hourly counts (from `since_hour`) over the matching events,
    /// and how many match in all.
    async fn search_issues(
        &self,
        viewer: Viewer,
        project_id: i64,
        search: &IssueSearch,
        page: Page,
        since_hour: i64,
    ) -> StoreResult<SearchResults>;
}

/// Changing an issue: its status (resolve, ignore, reopen), its assignee,
/// comments and activity, and merging issues (`triage_sql.rs`). Each change
/// writes its activity entry in the transaction that makes it.
#[async_trait]
pub trait Triage: Send + Sync + 'static {
    /// Changes an issue's status; resolving or reopening clears the
    /// regression mark, and any change forgets a release resolution (see
    /// [`Triage::resolve_issue`], which the API and dashboard use to resolve).
    async fn set_issue_status(&self, viewer: Viewer, issue_id: i64, status: IssueStatus) -> StoreResult<Option<Issue>>;

    /// Ignores an issue until `condition` ends (counted from `now` and the
    /// issue's counts at this moment). Setting any status clears the
    /// condition; ending it by hand fires no alert.
    async fn ignore_issue(
        &self,
        viewer: Viewer,
        issue_id: i64,
        condition: IgnoreCondition,
        now: i64,
    ) -> StoreResult<Option<Issue>>;

    /// Resolves an issue, now or with respect to releases (see
    /// [`Resolution`]); the one place a resolution is written, so whatever
    /// else must record it (an activity entry) goes here. `Conflict` for
    /// the current release of a project without releases.
    async fn resolve_issue(&self, viewer: Viewer, issue_id: i64, resolution: &Resolution)
        -> StoreResult<Option<Issue>>;

    /// Ends the timed ignores due at `now`: each issue becomes unresolved and
    /// its project's unignored rules write their deliveries, in one
    /// transaction, once even with several nodes. Returns how many ended.
    async fn end_expired_ignores(&self, now: i64) -> StoreResult<u64>;

    /// Merges issues of one project into the target, in one transaction:
    /// counts, users, first and last seen, environments, releases, tags,
    /// hourly history, events and alert history move to the target, the
    /// merged issues are deleted, and their fingerprints (and those merged
    /// into them before) lead to the target from then on, so later events of
    /// any of them are counted there. Any viewer who can see the issues may
    /// merge them. `Ok(false)` when the viewer cannot see the target;
    /// `NotFound` for a merged issue they cannot see, `Conflict` for one of
    /// another project. (A "merged" activity entry belongs in this method.)
    async fn merge_issues(&self, viewer: Viewer, merge: &IssueMerge, at: i64) -> StoreResult<bool>;

    /// Assigns an issue the viewer can see to a member of its organisation,
    /// by e-mail, or unassigns it (`None`), recording the change in its
    /// activity in the same transaction.
    async fn assign_issue(
        &self,
        viewer: Viewer,
        issue_id: i64,
        assignee: Option<&str>,
        at: i64,
    ) -> StoreResult<Assignment>;

    /// Adds the viewer's comment to an issue's activity; `None` when the
    /// viewer cannot see the issue. The caller has checked the text
    /// ([`activity::comment_problem`]).
    async fn add_issue_comment(
        &self,
        viewer: Viewer,
        issue_id: i64,
        text: &str,
        at: i64,
    ) -> StoreResult<Option<Activity>>;

    /// An issue's activity, newest first, only entries of `kind` when given;
    /// `None` when the viewer cannot see the issue.
    async fn issue_activity(
        &self,
        viewer: Viewer,
        issue_id: i64,
        kind: Option<ActivityKind>,
        page: Page,
    ) -> StoreResult<Option<PageOf<Activity>>>;

    /// Records one entry of an issue's activity on its own, for changes made
    /// outside the verbs above (e.g. a merge); `actor` `None` is booboo.
    /// Changes made inside a store transaction call `insert_activity` from
    /// `activity_sql.rs` on that transaction instead.
    async fn record_issue_activity(
        &self,
        issue_id: i64,
        actor: Option<i64>,
        kind: ActivityKind,
        detail: &serde_json::Value,
        at: i64,
    ) -> StoreResult<()>;
}

/// Alert rules, their channels and the delivery outbox, and alerts by
/// e-mail (`alert_sql.rs`). The decision to alert is taken inside
/// [`Ingest::store_events`]; this is what the rules pages and the delivery
/// worker use.
#[async_trait]
pub trait Alerting: Send + Sync + 'static {
    /// Stores a validated rule with its channels in one transaction.
    async fn create_alert_rule(&self, project_id: i64, rule: &NewAlertRule, at: i64) -> StoreResult<AlertRule>;

    /// A project's rules, oldest first. The caller has checked access.
    async fn alert_rules(&self, project_id: i64) -> StoreResult<Vec<AlertRule>>;

    /// A rule the viewer can see.
    async fn alert_rule(&self, viewer: Viewer, id: i64) -> StoreResult<Option<AlertRule>>;

    /// Replaces a rule's settings, and its channels when `replace_channels`.
    async fn update_alert_rule(
        &self,
        viewer: Viewer,
        id: i64,
        rule: &NewAlertRule,
        replace_channels: bool,
    ) -> StoreResult<Option<AlertRule>>;

    /// Deletes a rule the viewer can see; whether there was one. Its pending
    /// deliveries are marked failed when next claimed.
    async fn delete_alert_rule(&self, viewer: Viewer, id: i64) -> StoreResult<bool>;

    /// Sets (or with `failure` `None`, clears) a channel's last failure.
    async fn record_channel_result(
        &self,
        channel_id: i64,
        at: i64,
        status: Option<i64>,
        failure: Option<&str>,
    ) -> StoreResult<()>;

    /// Claims due deliveries for one node until `now + lease_ms`; each due
    /// delivery is claimed by exactly one node.
    async fn claim_deliveries(&self, node: &str, now: i64, lease_ms: i64, limit: i64) -> StoreResult<Vec<DueDelivery>>;

    /// Records how an attempt ended; `false` if this node no longer held the
    /// claim (another node took it over after the lease ran out).
    async fn finish_delivery(&self, id: i64, node: &str, now: i64, result: &AttemptResult) -> StoreResult<bool>;

    /// At start: releases claims left by a previous run of this server, so
    /// pending deliveries are attempted at once. SQLite only (one server per
    /// database); on PostgreSQL other nodes may hold live claims, which
    /// expire with their lease.
    async fn release_delivery_claims(&self) -> StoreResult<()>;

    /// A project's deliveries, newest first.
    async fn project_deliveries(&self, project_id: i64, limit: i64) -> StoreResult<Vec<DeliveryInfo>>;

    /// The alerts an issue triggered, newest first.
    async fn issue_deliveries(&self, issue_id: i64, limit: i64) -> StoreResult<Vec<DeliveryInfo>>;

    /// Pending deliveries by channel kind, for `/metrics`.
    async fn pending_deliveries(&self) -> StoreResult<Vec<(String, i64)>>;

    /// The addresses a project's "members" e-mail goes to: its organisation's
    /// members, less those who opted out of this project's alerts.
    async fn alert_email_recipients(&self, project_id: i64) -> StoreResult<Vec<String>>;

    /// Counts one alert e-mail to `address`; `false` when it is over `cap`
    /// within the current window (then hold it for the digest).
    async fn reserve_alert_email(&self, address: &str, now: i64, cap: i64, window_ms: i64) -> StoreResult<bool>;

    async fn hold_alert_email(&self, address: &str, now: i64, summary: &str, url: &str) -> StoreResult<()>;

    /// Takes what was held for addresses whose window has ended.
    async fn take_alert_email_digests(&self, now: i64) -> StoreResult<Vec<HeldEmail>>;

    async fn set_alert_email_opt_out(&self, user_id: i64, project_id: i64, opted_out: bool) -> StoreResult<()>;

    /// The projects whose alert e-mails a user opted out of.
    async fn alert_email_opt_outs(&self, user_id: i64) -> StoreResult<Vec<i64>>;
}

/// Data leaving the store: deletion, export and retention
/// (`lifecycle_sql.rs`). Large removals go a page per transaction, so
/// ingest keeps flowing. Each retention write is one short transaction over
/// at most a page of rows and counts exactly the rows it removed, so several
/// nodes may run retention at once (`crates/booboo-server/src/retention.rs`).
#[async_trait]
pub trait DataLifecycle: Send + Sync + 'static {
    /// Deletes an issue with its events and counts. The issue is first
    /// detached from its fingerprint (later events of it start a new issue),
    /// then its events go a page per transaction, so ingest keeps flowing
    /// however many there are. `Ok(false)` when the viewer cannot see it;
    /// `Forbidden` unless they administer its organisation.
    async fn delete_issue(&self, viewer: Viewer, issue_id: i64) -> StoreResult<bool>;

    /// Deletes a project: its keys are revoked first (ingest refuses it from
    /// then on), then its events and issues go a page per transaction, then
    /// the project. Same answers as [`DataLifecycle::delete_issue`].
    async fn delete_project(&self, viewer: Viewer, project_id: i64, at: i64) -> StoreResult<bool>;

    /// The highest issue id and event row id of a project now: an export
    /// stops there, so what it writes is one consistent cut even while
    /// events keep arriving. The caller has checked the project is visible.
    async fn export_marks(&self, project_id: i64) -> StoreResult<ExportMarks>;

    /// Issues of a project with ids in `(after, up_to]`, in id order.
    async fn export_issues(&self, project_id: i64, after: i64, up_to: i64, limit: i64) -> StoreResult<Vec<Issue>>;

    /// Stored events of a project with row ids in `(after, up_to]`, in
    /// storage order, each with its row id (the next page's `after`).
    async fn export_events(
        &self,
        project_id: i64,
        after: i64,
        up_to: i64,
        limit: i64,
    ) -> StoreResult<Vec<(i64, StoredEvent)>>;

    /// Takes or renews the retention lease for `node` until `until`: `true`
    /// if this node holds it, `false` while another node's is live.
    async fn take_retention_lease(&self, node: &str, now: i64, until: i64) -> StoreResult<bool>;

    /// Stored payloads per project, for projects that have any.
    async fn stored_per_project(&self) -> StoreResult<Vec<(i64, i64)>>;

    /// Stored payloads per issue of a project, as `(issue_id, stored, not
    /// kept)`: kept events (first, regressions) are never evicted.
    async fn stored_per_issue(&self, project_id: i64) -> StoreResult<Vec<(i64, i64, i64)>>;

    /// An issue's stored events, oldest first.
    async fn issue_event_ages(&self, issue_id: i64) -> StoreResult<Vec<EventAge>>;

    /// Deletes those of `ids` that belong to the issue and are neither kept
    /// nor its latest event, and adds them to its `not_stored.retention`;
    /// how many went.
    async fn evict_events(&self, issue_id: i64, ids: &[i64]) -> StoreResult<u64>;

    /// Deletes up to `limit` of a project's events received before `before`
    /// (oldest first), counted on their issues as removed by retention.
    async fn expire_events(&self, project_id: i64, before: i64, limit: i64) -> StoreResult<u64>;

    /// Removes up to `limit` issues of a project last seen before `before`
    /// with no stored event left.
    async fn remove_empty_issues(&self, project_id: i64, before: i64, limit: i64) -> StoreResult<u64>;

    /// Up to `limit` events received before `before` whose payload was not
    /// lightened yet, oldest first, as `(row id, payload)`.
    async fn events_to_lighten(&self, before: i64, limit: i64) -> StoreResult<Vec<(i64, String)>>;

    /// Replaces payloads with their lightened form and marks them, once.
    async fn replace_lightened(&self, payloads: &[(i64, String)]) -> StoreResult<u64>;
}

/// The whole store: every job above, held as `Arc<dyn Store>`. Code that
/// needs one job only may take that trait instead.
pub trait Store:
    Maintenance
    + PayloadDictionaries
    + Ingest
    + Accounts
    + Organisations
    + Projects
    + IssueReads
    + Triage
    + Alerting
    + DataLifecycle
{
}

impl<
        T: Maintenance
            + PayloadDictionaries
            + Ingest
            + Accounts
            + Organisations
            + Projects
            + IssueReads
            + Triage
            + Alerting
            + DataLifecycle,
    > Store for T
{
}

/// Opens the store a database URL names, creating and migrating it.
pub async fn open(database_url: &str) -> StoreResult<Arc<dyn Store>> {
    if database_url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(database_url).await?))
    } else if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PostgresStore::open(database_url).await?))
    } else {
        Err(StoreError::Incompatible(format!(
            "unsupported database URL {:?}: expected sqlite:PATH or postgres://…",
            redact_url(database_url)
        )))
    }
}

/// A database URL with its password replaced, for logs and `config show`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, String::new()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{scheme}://{user}:[redacted]@{host}{path}")
            } else {
                format!("{scheme}://{user}@{host}{path}")
            }
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_url_hides_only_the_password() {
        assert_eq!(
            super::redact_url("postgres://bob:s3cret@db:5432/booboo"),
            "postgres://bob:[redacted]@db:5432/booboo"
        );
        assert_eq!(super::redact_url("postgres://bob@db/booboo"), "postgres://bob@db/booboo");
        assert_eq!(super::redact_url("sqlite:./booboo-data/booboo.db"), "sqlite:./booboo-data/booboo.db");
    }
}
