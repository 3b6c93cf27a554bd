//! The issue search's SQL, written once for both backends. The query text is
//! assembled from a parsed search; every value from the user is a bind
//! parameter, and what SQLite and PostgreSQL do differently (the full-text
//! index, reading a field of the stored event's JSON) is in
//! [`SearchDialect`], one constant per backend (part of `dialect.rs`). The functions that run the
//! queries are a macro expanded in `sqlite.rs` and `postgres.rs`, because
//! sqlx's pool and row types differ per backend while the SQL does not.
//!
//! How counts are computed depends on the event terms (see [`CountSource`]
//! and `docs/search.md`):
//! - none: the issue's own columns (`event_count`, `user_count`);
//! - one term on an environment, a release or a tag (unless sorting by
//!   users): the per-issue counter tables, which count every event received
//!   and survive retention; the chart from the stored events, and users too
//!   unless the term wants one environment, whose users are counted per
//!   issue (`issue_environments.user_count`), sorted by them or not;
//! - otherwise: the stored events, grouped by issue.

use super::rows::{Bind, ISSUE_COLUMNS};
use super::stored_payload::tag_hash;
use super::{CountSource, IssueFilter, IssueSearch, IssueSort, Page};
use booboo_core::search_query::{Assignee, EventField, Filter, Status, TimeField};

/// The placeholder of the N-th bind: `$N` on both backends (sqlx binds
/// SQLite's `$N` to the N-th argument, as PostgreSQL does).
fn placeholder(n: usize) -> String {
    format!("${n}")
}

/// What the search SQL does differently per backend.
pub(super) struct SearchDialect {
    /// A condition on `i` true when the issue's text matches the full-text
    /// query bound at the placeholder given.
    pub text_match: fn(&str) -> String,
    /// The full-text query for some words (letters and digits only), each a
    /// word prefix, all required.
    pub text_query: fn(&[String]) -> String,
    /// The text of a tag of event `e`, the tag's key bound at the placeholder
    /// given: from the event's `tags` column, or, for rows stored before
    /// that column (`tags` NULL), from the event's JSON.
    pub event_tag: fn(&str) -> String,
    /// The e-mail of event `e`'s user, likewise (`stored_payload.rs`).
    pub event_user_email: &'static str,
    /// A condition true when the bytes of `e.tag_hashes` contain the bytes
    /// bound at the placeholder given.
    pub has_tag_hash: fn(&str) -> String,
}

pub(super) const SQLITE: SearchDialect = SearchDialect {
    text_match: |p| format!("i.id IN (SELECT rowid FROM issues_fts WHERE issues_fts MATCH {p})"),
    text_query: |words| words.iter().map(|w| format!("\"{w}\"*")).collect::<Vec<_>>().join(" "),
    event_tag: |p| {
        format!(
            "CASE WHEN e.tags IS NULL THEN CAST(json_extract(e.payload, '$.tags.\"' || {p} || '\"') AS TEXT) \
             ELSE CAST(json_extract(e.tags, '$.\"' || {p} || '\"') AS TEXT) END"
        )
    },
    event_user_email: "CASE WHEN e.tags IS NULL THEN CAST(json_extract(e.payload, '$.user.email') AS TEXT) \
                       ELSE e.user_email END",
    has_tag_hash: |p| format!("instr(e.tag_hashes, {p}) > 0"),
};

pub(super) const POSTGRES: SearchDialect = SearchDialect {
    // The expression of the index `issues_search` (migration 0014), exactly.
    text_match: |p| {
        format!(
            "to_tsvector('simple'::regconfig, regexp_replace(i.title || ' ' || i.culprit, '[^[:alnum:]]+', ' ', 'g')) \
             @@ to_tsquery('simple', {p})"
        )
    },
    text_query: |words| words.iter().map(|w| format!("'{w}':*")).collect::<Vec<_>>().join(" & "),
    // `json`, not `jsonb`: it parses only as far as needed and accepts the
    // `\u0000` escapes jsonb refuses.
    event_tag: |p| {
        format!("CASE WHEN e.tags IS NULL THEN (e.payload::json -> 'tags' ->> {p}) ELSE (e.tags::json ->> {p}) END")
    },
    event_user_email: "CASE WHEN e.tags IS NULL THEN (e.payload::json -> 'user' ->> 'email') ELSE e.user_email END",
    has_tag_hash: |p| format!("position({p} IN e.tag_hashes) > 0"),
};

/// A query being assembled: its binds are numbered after `reserved` ones
/// the caller binds first.
struct Sql<'d> {
    dialect: &'d SearchDialect,
    reserved: usize,
    binds: Vec<Bind>,
}

impl Sql<'_> {
    fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        placeholder(self.reserved + self.binds.len())
    }

    fn text(&mut self, value: &str) -> String {
        self.bind(Bind::Text(value.to_string()))
    }

    fn list(&mut self, values: impl IntoIterator<Item = String>) -> String {
        values.into_iter().map(|v| self.bind(Bind::Text(v))).collect::<Vec<_>>().join(", ")
    }

    /// `expr IN (…)` or `expr NOT IN (…)`; an empty list matches nothing (or,
    /// negated, everything).
    fn member(&mut self, expr: &str, negated: bool, values: Vec<String>) -> String {
        if values.is_empty() {
            return if negated { "1 = 1".into() } else { "1 = 0".into() };
        }
        let list = self.list(values);
        format!("{expr} {}IN ({list})", if negated { "NOT " } else { "" })
    }
}

/// The event terms of a search.
fn event_terms(search: &IssueSearch) -> Vec<&Filter> {
    search.query.filters.iter().filter(|f| f.is_event_term()).collect()
}

/// How a search's counts are computed.
pub(super) fn count_source(search: &IssueSearch) -> CountSource {
    let terms = event_terms(search);
    match terms.as_slice() {
        [] => CountSource::AllEvents,
        [Filter::Event { negated: false, field: EventField::Environment, values }] if values.len() == 1 => {
            CountSource::Counters
        }
        [Filter::Event { field: EventField::Environment | EventField::Release | EventField::Tag(_), .. }]
            if search.sort != IssueSort::Users =>
        {
            CountSource::Counters
        }
        _ => CountSource::StoredEvents,
    }
}

/// The conditions on a stored event `e` for the search's event terms,
/// joined by AND (`1 = 1` when there are none).
fn event_conditions(sql: &mut Sql<'_>, search: &IssueSearch) -> String {
    let mut conditions = Vec::new();
    for term in event_terms(search) {
        let Filter::Event { negated, field, values } = term else { continue };
        let (expr, values) = match field {
            EventField::Environment => ("e.environment".to_string(), values.clone()),
            EventField::Release => ("e.release".to_string(), values.clone()),
            // The user key is `id:…` whenever the event's user has an id.
            // Wanted users narrow the events to the issues they hit first
            // (issue_users), so a search for one user reads that user's
            // issues' events, not the project's.
            EventField::UserId if !*negated && !values.is_empty() => {
                let keys = sql.list(values.iter().map(|v| format!("id:{v}")));
                conditions.push(format!(
                    "e.issue_id IN (SELECT iu.issue_id FROM issue_users iu WHERE iu.user_key IN ({keys})) \
                     AND e.user_key IN ({keys})"
                ));
                continue;
            }
            EventField::UserId => {
                ("COALESCE(e.user_key, '')".to_string(), values.iter().map(|v| format!("id:{v}")).collect())
            }
            EventField::UserEmail => (format!("COALESCE({}, '')", sql.dialect.event_user_email), values.clone()),
            // An event whose tags are hashed (stored_payload.rs) is judged
            // by the hashes the filter index holds, without reading its
            // row; others by their tags. A wanted empty value (the tag is
            // missing or empty) is looked for in the tags alone.
            EventField::Tag(tag) if !values.is_empty() && values.iter().all(|v| !v.is_empty()) => {
                let key = sql.text(tag);
                let by_tags = format!("COALESCE({}, '')", (sql.dialect.event_tag)(&key));
                let by_tags = sql.member(&by_tags, false, values.clone());
                let by_hashes = values
                    .iter()
                    .map(|value| {
                        let p = sql.bind(Bind::Bytes(tag_hash(tag, value).to_vec()));
                        (sql.dialect.has_tag_hash)(&p)
                    })
                    .collect::<Vec<_>>()
                    .join(" OR ");
                let condition = format!("(CASE WHEN e.tag_hashes IS NULL THEN {by_tags} ELSE ({by_hashes}) END)");
                conditions.push(if *negated { format!("NOT {condition}") } else { condition });
                continue;
            }
            EventField::Tag(tag) => {
                let key = sql.text(tag);
                (format!("COALESCE({}, '')", (sql.dialect.event_tag)(&key)), values.clone())
            }
        };
        conditions.push(sql.member(&expr, *negated, values));
    }
    if conditions.is_empty() {
        "1 = 1".into()
    } else {
        conditions.join(" AND ")
    }
}

/// For a search with a release term and no wanted environment: a condition
/// that every event of the project meets (its environment is one the
/// project has seen), written so that the index on (project, environment,
/// release, …) can seek each environment's releases instead of the search
/// reading every event of the project.
fn every_environment(search: &IssueSearch, project: &str) -> String {
    let terms = event_terms(search);
    let on = |wanted: EventField| {
        terms.iter().any(|t| matches!(t, Filter::Event { negated: false, field, .. } if *field == wanted))
    };
    if on(EventField::Release) && !on(EventField::Environment) {
        format!(" AND e.environment IN (SELECT pe.environment FROM project_environments pe WHERE pe.project_id = {project})")
    } else {
        String::new()
    }
}

/// The counter table that counts an event term's field, and the condition
/// on its rows `c` for the term's values; `None` for fields no counter
/// table keeps (users).
fn counter_rows(sql: &mut Sql<'_>, field: &EventField, values: &[String]) -> Option<(&'static str, String)> {
    Some(match field {
        EventField::Environment => ("issue_environments", sql.member("c.environment", false, values.to_vec())),
        EventField::Release => ("issue_releases", sql.member("c.release", false, values.to_vec())),
        EventField::Tag(tag) => {
            let key = sql.text(tag);
            let value = sql.member("c.value", false, values.to_vec());
            ("issue_tags", format!("c.key = {key} AND {value}"))
        }
        EventField::UserId | EventField::UserEmail => return None,
    })
}

/// The matching-event count of issue `i` from a counter table, for the one
/// event term of a [`CountSource::Counters`] search.
fn counter_count(sql: &mut Sql<'_>, search: &IssueSearch) -> String {
    let Some(Filter::Event { negated, field, values }) = event_terms(search).into_iter().next() else {
        return "i.event_count".into();
    };
    let Some((table, condition)) = counter_rows(sql, field, values) else {
        return "i.event_count".into();
    };
    let sum = format!(
        "(SELECT CAST(COALESCE(SUM(c.event_count), 0) AS BIGINT) FROM {table} c WHERE c.issue_id = i.id AND {condition})"
    );
    if *negated {
        format!("(i.event_count - {sum})")
    } else {
        sum
    }
}

/// For a [`CountSource::Counters`] search whose one term wants values (not
/// negated): a condition true when issue `i` has a counter row for one of
/// them, which is what a count above 0 means (counter rows are written
/// with the events they count and never go down). Read from the counter
/// table's primary key alone, it is several times cheaper than summing the
/// rows' counts, for lists that test issue after issue.
fn counter_presence(sql: &mut Sql<'_>, search: &IssueSearch) -> Option<String> {
    let [Filter::Event { negated: false, field, values }] = event_terms(search).as_slice() else {
        return None;
    };
    let (table, condition) = counter_rows(sql, field, values)?;
    Some(format!("EXISTS (SELECT 1 FROM {table} c WHERE c.issue_id = i.id AND {condition})"))
}

/// The distinct users of issue `i` in the one environment a
/// [`CountSource::Counters`] search wants, if it wants exactly one (users in
/// several environments, or outside one, may be the same person: they are
/// counted from the stored events instead).
fn counter_users(sql: &mut Sql<'_>, search: &IssueSearch) -> Option<String> {
    let [Filter::Event { negated: false, field: EventField::Environment, values }] = event_terms(search).as_slice()
    else {
        return None;
    };
    let [environment] = values.as_slice() else { return None };
    let p = sql.text(environment);
    Some(format!(
        "COALESCE((SELECT c.user_count FROM issue_environments c WHERE c.issue_id = i.id AND c.environment = {p}), 0)"
    ))
}

/// The conditions on issue `i` but its status (assignment, level, times,
/// text).
fn issue_conditions(sql: &mut Sql<'_>, search: &IssueSearch) -> Vec<String> {
    let mut conditions = Vec::new();
    let filters = &search.query.filters;
    for filter in filters {
        match filter {
            Filter::HasAssignee(true) => conditions.push("i.assignee_id IS NOT NULL".into()),
            Filter::HasAssignee(false) => conditions.push("i.assignee_id IS NULL".into()),
            Filter::Assigned { negated, to } => {
                let target = match to {
                    // The viewer's id is bound second by every caller.
                    Assignee::Me => format!("i.assignee_id = {}", placeholder(2)),
                    Assignee::Email(email) => {
                        let p = sql.text(email);
                        format!("i.assignee_id IN (SELECT u.id FROM users u WHERE LOWER(u.email) = {p})")
                    }
                };
                conditions.push(if *negated { format!("(i.assignee_id IS NULL OR NOT ({target}))") } else { target });
            }
            Filter::Level { negated, levels } => {
                conditions.push(sql.member("i.level", *negated, levels.iter().map(|l| l.to_string()).collect()))
            }
            Filter::Time { negated, field, op, at_ms } => {
                let column = match field {
                    TimeField::FirstSeen => "i.first_seen",
                    TimeField::LastSeen => "i.last_seen",
                };
                let p = sql.bind(Bind::Int(*at_ms));
                let condition = format!("{column} {} {p}", op.as_sql());
                conditions.push(if *negated { format!("NOT ({condition})") } else { condition });
            }
            Filter::Status { .. } | Filter::TimesSeen { .. } | Filter::Event { .. } => {}
        }
    }
    if !search.query.words.is_empty() {
        let p = sql.text(&(sql.dialect.text_query)(&search.query.words));
        conditions.push((sql.dialect.text_match)(&p));
    }
    conditions
}

/// The most issues a list read in index order counts for its total (see
/// [`SearchQueries::total_cap`]).
pub const TOTAL_CAP: i64 = 10_000;

/// The statuses a search wants, in a fixed order: those named (`is:…`)
/// less those negated, every status but the negated ones, every status with
/// `any_status`, or unresolved issues alone.
fn wanted_statuses(search: &IssueSearch) -> Vec<&'static str> {
    let named = |negated: bool| -> Vec<Status> {
        search
            .query
            .filters
            .iter()
            .filter_map(|f| match f {
                Filter::Status { negated: n, status } if *n == negated => Some(*status),
                _ => None,
            })
            .collect()
    };
    let (wanted, unwanted) = (named(false), named(true));
    [Status::Unresolved, Status::Resolved, Status::Ignored]
        .into_iter()
        .filter(|s| {
            let chosen = if !wanted.is_empty() {
                wanted.contains(s)
            } else {
                !unwanted.is_empty() || search.any_status || *s == Status::Unresolved
            };
            chosen && !unwanted.contains(s)
        })
        .map(Status::as_str)
        .collect()
}

/// The list and total queries of a search. Parameters 1 to 3 are
/// `is_admin`, `user_id` and `project_id`, bound by the caller before the
/// returned binds; the total query takes the first `total_binds` of them.
pub(super) struct SearchQueries {
    pub list: String,
    pub total: String,
    pub binds: Vec<Bind>,
    pub total_binds: usize,
    /// `None`: each row of the list carries the total (`match_total`), the
    /// list having found every match anyway, and the total query is for a
    /// page past the end. `Some(cap)`: the list reads the issues in the
    /// order of an index and stops after its page, so the total query
    /// counts, and stops counting after `cap` matches (it answers at most
    /// `cap + 1`).
    pub total_cap: Option<i64>,
    pub source: CountSource,
    /// Whether the list query's users are the matching events' users (else
    /// they are counted afterwards, for the listed issues alone).
    pub users_counted: bool,
}

pub(super) fn search_queries(
    dialect: &SearchDialect,
    visible_org: &str,
    search: &IssueSearch,
    page: Page,
) -> SearchQueries {
    let mut sql = Sql { dialect, reserved: 3, binds: Vec::new() };
    let project = placeholder(3);
    let source = count_source(search);
    let (count, users, last, first, join) = match source {
        CountSource::AllEvents => {
            ("i.event_count".to_string(), "i.user_count".to_string(), "i.last_seen", "i.first_seen", String::new())
        }
        CountSource::Counters => {
            let count = counter_count(&mut sql, search);
            let users = counter_users(&mut sql, search).unwrap_or_else(|| "i.user_count".into());
            (count, users, "i.last_seen", "i.first_seen", String::new())
        }
        CountSource::StoredEvents => {
            let conditions = event_conditions(&mut sql, search);
            // Distinct users are costly over many events: counted here only
            // to sort by them, else afterwards for the listed issues alone.
            let users =
                if search.sort == IssueSort::Users { "COUNT(DISTINCT e.user_key)" } else { "CAST(0 AS BIGINT)" };
            let join = format!(
                " JOIN (SELECT e.issue_id, COUNT(*) AS n, {users} AS u, \
                 MAX(e.received_at) AS last_at, MIN(e.received_at) AS first_at \
                 FROM events e WHERE e.project_id = {project}{} AND {conditions} GROUP BY e.issue_id) m ON m.issue_id = i.id",
                every_environment(search, &project)
            );
            ("m.n".to_string(), "m.u".to_string(), "m.last_at", "m.first_at", join)
        }
    };
    let mut conditions = issue_conditions(&mut sql, search);
    // Whether the viewer may see the project is asked once, apart: joined
    // to the project's row instead, it led SQLite (3.46, with statistics)
    // to walk the issues in the order of another index and sort them all.
    conditions.insert(
        0,
        format!(
            "i.project_id = {project} AND EXISTS (SELECT 1 FROM projects p WHERE p.id = {project} AND {visible_org})"
        ),
    );
    // `timesSeen:` terms compare the matching count, whichever expression
    // gives it.
    let mut times_seen = Vec::new();
    for filter in &search.query.filters {
        if let Filter::TimesSeen { negated, op, count: n } = filter {
            times_seen.push((*negated, op.as_sql(), sql.bind(Bind::Int(*n))));
        }
    }
    let on_count = |expr: &str| -> Vec<String> {
        times_seen
            .iter()
            .map(|(negated, op, p)| {
                let condition = format!("{expr} {op} {p}");
                if *negated {
                    format!("NOT ({condition})")
                } else {
                    condition
                }
            })
            .collect()
    };
    let statuses: Vec<String> = wanted_statuses(search).into_iter().map(|s| sql.text(s)).collect();
    let order = match search.sort {
        IssueSort::LastSeen => "match_last",
        IssueSort::FirstSeen => "match_first",
        IssueSort::Events => "match_count",
        IssueSort::Users => "match_users",
    };
    let columns = format!(
        "{ISSUE_COLUMNS}, {count} AS match_count, {users} AS match_users, {last} AS match_last, {first} AS match_first"
    );
    let from = "FROM issues i";
    let users_counted = match source {
        CountSource::AllEvents => true,
        CountSource::Counters => users != "i.user_count",
        CountSource::StoredEvents => search.sort == IssueSort::Users,
    };
    // The order is an issue's own column when the counts are the issue's,
    // or when sorting by time with counts from the counters: the list then
    // walks the index on (project, status, that column) and stops after its
    // page, one walk per wanted status merged by order, instead of finding
    // and sorting every match.
    let issue_column = match (source, search.sort) {
        (CountSource::AllEvents, IssueSort::Events) => Some("i.event_count"),
        (CountSource::AllEvents, IssueSort::Users) => Some("i.user_count"),
        (CountSource::AllEvents | CountSource::Counters, IssueSort::LastSeen) => Some("i.last_seen"),
        (CountSource::AllEvents | CountSource::Counters, IssueSort::FirstSeen) => Some("i.first_seen"),
        _ => None,
    };
    if let (Some(column), false) = (issue_column, statuses.is_empty()) {
        let mut matching = conditions;
        // The issue's own count is never 0, and comparing it here could make
        // the planner walk the index on counts instead of the one on the
        // order asked for.
        if source != CountSource::AllEvents {
            matching.push(counter_presence(&mut sql, search).unwrap_or_else(|| format!("{count} > 0")));
        }
        matching.extend(on_count(&count));
        let matching = matching.join(" AND ");
        let total_binds = sql.binds.len();
        let total = format!(
            "SELECT COUNT(*) FROM (SELECT 1 {from} WHERE {matching} AND i.status IN ({}) LIMIT {}) c",
            statuses.join(", "),
            TOTAL_CAP + 1
        );
        let arm = |status: &str, limit: &str| {
            format!(
                "SELECT {columns} {from} WHERE {matching} AND i.status = {status} \
                 ORDER BY {column} DESC, i.id DESC LIMIT {limit}"
            )
        };
        let list = if let [status] = statuses.as_slice() {
            let limit = sql.bind(Bind::Int(page.limit + 1));
            let offset = sql.bind(Bind::Int(page.offset));
            arm(status, &format!("{limit} OFFSET {offset}"))
        } else {
            let each = sql.bind(Bind::Int(page.offset + page.limit + 1));
            let arms = statuses
                .iter()
                .enumerate()
                .map(|(n, status)| format!("SELECT * FROM ({}) a{n}", arm(status, &each)))
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            let limit = sql.bind(Bind::Int(page.limit + 1));
            let offset = sql.bind(Bind::Int(page.offset));
            format!("SELECT x.* FROM ({arms}) x ORDER BY x.{order} DESC, x.id DESC LIMIT {limit} OFFSET {offset}")
        };
        return SearchQueries {
            list,
            total,
            binds: sql.binds,
            total_binds,
            total_cap: Some(TOTAL_CAP),
            source,
            users_counted,
        };
    }
    let wanted =
        if statuses.is_empty() { "1 = 0".to_string() } else { format!("i.status IN ({})", statuses.join(", ")) };
    conditions.push(wanted);
    let inner = format!("SELECT {columns} {from}{join} WHERE {}", conditions.join(" AND "));
    let mut outer = vec!["x.match_count > 0".to_string()];
    outer.extend(on_count("x.match_count"));
    let from = format!("FROM ({inner}) x WHERE {}", outer.join(" AND "));
    let total = format!("SELECT COUNT(*) {from}");
    let total_binds = sql.binds.len();
    let limit = sql.bind(Bind::Int(page.limit + 1));
    let offset = sql.bind(Bind::Int(page.offset));
    // The total comes with the page (a window over every match, before the
    // LIMIT): the matches are found once, not once more to count them.
    let list = format!(
        "SELECT x.*, COUNT(*) OVER () AS match_total {from} ORDER BY x.{order} DESC, x.id DESC LIMIT {limit} OFFSET {offset}"
    );
    SearchQueries { list, total, binds: sql.binds, total_binds, total_cap: None, source, users_counted }
}

/// For some listed issues (integer ids, formatted in, which the access-checked
/// list query returned), the stored events that match the search: per issue
/// and hour since `since_hour` when `hourly`, else distinct users per issue.
/// The query reads each issue's events through `events_by_issue`; a
/// condition on the project would let SQLite pick the project's whole index
/// instead.
pub(super) fn matching_events_query(
    dialect: &SearchDialect,
    search: &IssueSearch,
    ids: &str,
    hourly: Option<i64>,
) -> (String, Vec<Bind>) {
    let mut sql = Sql { dialect, reserved: 0, binds: Vec::new() };
    let conditions = event_conditions(&mut sql, search);
    let text = match hourly {
        Some(since_hour) => {
            let since = sql.bind(Bind::Int(since_hour * 3_600_000));
            format!(
                "SELECT e.issue_id, e.received_at / 3600000 AS hour, COUNT(*) AS n FROM events e \
                 WHERE e.issue_id IN ({ids}) AND e.received_at >= {since} AND {conditions} \
                 GROUP BY e.issue_id, e.received_at / 3600000 ORDER BY 1, 2"
            )
        }
        None => format!(
            "SELECT e.issue_id, CAST(0 AS BIGINT) AS hour, COUNT(DISTINCT e.user_key) AS n FROM events e \
             WHERE e.issue_id IN ({ids}) AND {conditions} GROUP BY e.issue_id ORDER BY 1"
        ),
    };
    (text, sql.binds)
}

/// Defines `search_issues_with` for one backend: `$pool` is its pool type,
/// `$row` its row type, `$text` what a text bind goes through, `$dialect`
/// its [`SearchDialect`] and `$visible_org` its access rule.
macro_rules! search_runner {
    ($pool:ty, $row:ty, $text:path, $dialect:expr, $visible_org:expr) => {
        /// The search, run: a page of hits with their counts, the total, and
        /// the hourly counts of the listed issues' matching events (from
        /// the counters when the search has no event term).
        async fn search_issues_with(
            pool: &$pool,
            viewer: Viewer,
            project_id: i64,
            search: &IssueSearch,
            page: Page,
            since_hour: i64,
        ) -> StoreResult<(Vec<IssueHit>, (i64, bool), CountSource, Vec<HourCount>, bool)> {
            let dialect: &super::search_sql::SearchDialect = $dialect;
            let built = super::search_sql::search_queries(dialect, $visible_org, search, page);
            macro_rules! bound {
                ($sql:expr, $binds:expr) => {{
                    let mut query = sqlx::query($sql).bind(viewer.is_admin).bind(viewer.user_id).bind(project_id);
                    for bind in $binds {
                        query = match bind {
                            Bind::Int(i) => query.bind(*i),
                            Bind::Bytes(b) => query.bind(b.as_slice()),
                            Bind::Text(t) => query.bind($text(t)),
                        };
                    }
                    query
                }};
            }
            let rows =
                bound!(&built.list, &built.binds).fetch_all(pool).await.map_err(unavailable("searching issues"))?;
            let mut hits = rows
                .iter()
                .map(|row: &$row| {
                    Ok(IssueHit {
                        issue: issue_from_row(row)?,
                        count: row.try_get("match_count")?,
                        users: row.try_get("match_users")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(unavailable("reading searched issues"))?;
            let more = hits.len() as i64 > page.limit;
            hits.truncate(page.limit as usize);
            // (how many match, whether exactly: else more than that many)
            let counted = |rows: i64| match built.total_cap {
                Some(cap) if rows > cap => (cap, false),
                _ => (rows, true),
            };
            let total = if let (None, Some(row)) = (built.total_cap, rows.first()) {
                counted(row.try_get("match_total").map_err(unavailable("counting searched issues"))?)
            } else if !more && (!hits.is_empty() || page.offset == 0) {
                // The last page: the matches are those before it and on it.
                (page.offset + hits.len() as i64, true)
            } else {
                // A page with more after it, read in index order, or a page
                // past the end, which has no row to carry the total.
                let row = bound!(&built.total, &built.binds[..built.total_binds])
                    .fetch_one(pool)
                    .await
                    .map_err(unavailable("counting searched issues"))?;
                counted(row.try_get(0).map_err(unavailable("counting searched issues"))?)
            };
            let mut hourly = Vec::new();
            if built.source != CountSource::AllEvents && !hits.is_empty() {
                let ids = hits.iter().map(|h| h.issue.id.to_string()).collect::<Vec<_>>().join(",");
                let wanted: &[Option<i64>] =
                    if built.users_counted { &[Some(since_hour)] } else { &[Some(since_hour), None] };
                for hours in wanted {
                    let (text, binds) = super::search_sql::matching_events_query(dialect, search, &ids, *hours);
                    let mut query = sqlx::query(&text);
                    for bind in &binds {
                        query = match bind {
                            Bind::Int(i) => query.bind(*i),
                            Bind::Bytes(b) => query.bind(b.as_slice()),
                            Bind::Text(t) => query.bind($text(t)),
                        };
                    }
                    let rows = query.fetch_all(pool).await.map_err(unavailable("counting matching events"))?;
                    for row in &rows {
                        let (issue_id, hour, n): (i64, i64, i64) = (
                            row.try_get(0).map_err(unavailable("counting matching events"))?,
                            row.try_get(1).map_err(unavailable("counting matching events"))?,
                            row.try_get(2).map_err(unavailable("counting matching events"))?,
                        );
                        match hours {
                            Some(_) => hourly.push(HourCount { issue_id, hour, count: n }),
                            None => {
                                if let Some(hit) = hits.iter_mut().find(|h| h.issue.id == issue_id) {
                                    hit.users = n;
                                }
                            }
                        }
                    }
                    if hours.is_none() {
                        // Issues with no stored matching event have no users.
                        let counted: Vec<i64> = rows.iter().filter_map(|r| r.try_get::<i64, _>(0).ok()).collect();
                        for hit in hits.iter_mut().filter(|h| !counted.contains(&h.issue.id)) {
                            hit.users = 0;
                        }
                    }
                }
            }
            Ok((hits, total, built.source, hourly, more))
        }
    };
}
pub(super) use search_runner;

/// The issue list query: the access rule and project take parameters 1 to
/// 3 (`is_admin`, `user_id`, `project_id`, bound by the caller); the filters
/// add theirs after, returned in order. Free text goes through the full-text
/// search the issue search uses.
pub(super) fn issue_list_query(
    dialect: &SearchDialect,
    visible_org: &str,
    filter: &IssueFilter,
    page: Page,
) -> (String, Vec<Bind>) {
    let mut sql = format!(
        "SELECT {ISSUE_COLUMNS} FROM issues i JOIN projects p ON p.id = i.project_id \
         WHERE {visible_org} AND i.project_id = {}",
        placeholder(3)
    );
    let mut binds = Vec::new();
    let mut next = |b: Bind| {
        binds.push(b);
        placeholder(binds.len() + 3)
    };
    if let Some(status) = filter.status {
        sql.push_str(&format!(" AND i.status = {}", next(Bind::Text(status.as_str().into()))));
    }
    if let Some(level) = &filter.level {
        sql.push_str(&format!(" AND i.level = {}", next(Bind::Text(level.clone()))));
    }
    if let Some(environment) = &filter.environment {
        let n = next(Bind::Text(environment.clone()));
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM issue_environments ie WHERE ie.issue_id = i.id AND ie.environment = {n})"
        ));
    }
    if let Some(release) = &filter.release {
        let n = next(Bind::Text(release.clone()));
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM issue_releases ir WHERE ir.issue_id = i.id AND ir.release = {n})"
        ));
    }
    if let Some(query) = filter.query.as_deref().filter(|q| !q.trim().is_empty()) {
        // Through the full-text index, as the issue search does; text
        // without a letter or digit matches nothing.
        let words = booboo_core::search_query::words_of(query);
        if words.is_empty() {
            sql.push_str(" AND 1 = 0");
        } else {
            let n = next(Bind::Text((dialect.text_query)(&words)));
            sql.push_str(&format!(" AND {}", (dialect.text_match)(&n)));
        }
    }
    let order = match filter.sort {
        IssueSort::LastSeen => "i.last_seen DESC",
        IssueSort::FirstSeen => "i.first_seen DESC",
        IssueSort::Events => "i.event_count DESC",
        IssueSort::Users => "i.user_count DESC",
    };
    let limit = next(Bind::Int(page.limit + 1));
    let offset = next(Bind::Int(page.offset));
    sql.push_str(&format!(" ORDER BY {order}, i.id DESC LIMIT {limit} OFFSET {offset}"));
    (sql, binds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use booboo_core::search_query::parse;

    fn queries(text: &str, sort: IssueSort) -> SearchQueries {
        let search = IssueSearch { query: parse(text, 0).unwrap(), sort, any_status: false };
        search_queries(&SQLITE, "1 = 1", &search, Page { offset: 0, limit: 25 })
    }

    #[test]
    fn values_are_bound_never_formatted_in() {
        let q = queries(
            "env:\"x' OR 1=1 --\" browser:'evil' assigned:a@b.c lastSeen:-1h \"drop table\"",
            IssueSort::LastSeen,
        );
        for text in [&q.list, &q.total] {
            assert!(!text.contains("evil") && !text.contains("OR 1=1") && !text.contains("a@b.c"), "{text}");
            assert!(!text.contains("drop"), "{text}");
        }
    }

    #[test]
    fn the_count_source_follows_the_event_terms() {
        assert_eq!(queries("timeout level:error", IssueSort::LastSeen).source, CountSource::AllEvents);
        assert_eq!(queries("env:prod", IssueSort::Events).source, CountSource::Counters);
        assert_eq!(queries("!release:[1, 2]", IssueSort::LastSeen).source, CountSource::Counters);
        assert_eq!(queries("browser:Chrome", IssueSort::LastSeen).source, CountSource::Counters);
        assert_eq!(queries("env:prod", IssueSort::Users).source, CountSource::Counters);
        assert!(queries("env:prod", IssueSort::Users).users_counted);
        assert!(!queries("env:prod", IssueSort::LastSeen).list.contains("m.u"));
        assert_eq!(queries("env:[prod, dev]", IssueSort::Users).source, CountSource::StoredEvents);
        assert_eq!(queries("!env:prod", IssueSort::Users).source, CountSource::StoredEvents);
        assert!(!queries("!env:prod", IssueSort::LastSeen).users_counted);
        assert_eq!(queries("env:prod release:1", IssueSort::LastSeen).source, CountSource::StoredEvents);
        assert_eq!(queries("user.id:7", IssueSort::LastSeen).source, CountSource::StoredEvents);
    }

    #[test]
    fn placeholders_are_numbered_after_the_reserved_three() {
        let search = IssueSearch { query: parse("env:a level:error", 0).unwrap(), ..Default::default() };
        let q = search_queries(&POSTGRES, "TRUE", &search, Page { offset: 0, limit: 10 });
        assert!(q.list.contains("$4") && !q.list.contains('?'), "{}", q.list);
        // env (events), env (users), level, default status, env (whether the issue has it), limit, offset
        assert_eq!(q.binds.len(), 7);
        assert_eq!(q.total_binds, 5);
    }
}
