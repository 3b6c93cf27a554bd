//! A batch's counters, summed in memory and written once per batch.
//!
//! Every counted event adds one to its issue's environment, release, tag and
//! hour counters, adds its user to the issue's users and to its users in
//! that environment (a new one adds one to the issue's or the environment's
//! `user_count`), names its project's environment and release, and moves
//! the project's last event time. Written event by event that was four
//! statements plus one per tag (24 for an event with 20 tags, as sentry-sdk
//! sends); summed over the batch first, it is one multi-row statement per
//! table for up to [`ROWS_PER_STATEMENT`] rows. Nothing inside the batch reads
//! these tables before they are written (a release missing from
//! `project_releases` is judged new, which a release first seen in the same
//! batch is; the one reader of an issue's `user_count` inside a batch, an
//! ignore that ends at a number of users, has its issue's users counted
//! event by event instead). The maps are ordered, so the rows go in sorted order and two
//! PostgreSQL nodes lock them in the same order.
//!
//! The statements are written once for both backends by
//! [`batch_counter_queries`], expanded in `sqlite.rs` and `postgres.rs`:
//! SQLite runs one per table, PostgreSQL all of them as one statement.

use super::batch_rows::{BatchRows, Column};
use super::rows::MAX_TAGS_COUNTED;
use booboo_core::event::Event;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

/// Rows per multi-row statement: far below both backends' limit on bind
/// parameters (SQLite 32,766; PostgreSQL 65,535) at four per row.
///
/// On SQLite a multi-row statement's text differs with its number of rows,
/// so such statements are not kept prepared (`persistent(false)`): kept,
/// they would fill sqlx's per-connection cache of prepared statements and
/// evict the write path's fixed statements. PostgreSQL's take arrays, one
/// text whatever the rows (`batch_rows.rs`), and are kept.
pub(super) const ROWS_PER_STATEMENT: usize = 500;

/// What of an event the counters count.
struct Seen<'a> {
    environment: &'a str,
    release: &'a str,
    tags: &'a BTreeMap<String, String>,
    user_key: Option<&'a str>,
}

/// The counter increments of one batch.
#[derive(Debug, Default)]
pub(super) struct BatchCounters {
    /// Events per issue and environment.
    pub environments: BTreeMap<(i64, String), i64>,
    /// The users seen per issue (a new one adds one to the issue's
    /// `user_count`).
    pub issue_users: BTreeSet<(i64, String)>,
    /// The users seen per issue and environment.
    pub environment_users: BTreeSet<(i64, String, String)>,
    /// Events per issue and release, with the earliest receipt.
    pub releases: BTreeMap<(i64, String), (i64, i64)>,
    /// Events per issue, tag key and value.
    pub tags: BTreeMap<(i64, String, String), i64>,
    /// Events per issue and hour (milliseconds / 3,600,000).
    pub hourly: BTreeMap<(i64, i64), i64>,
    /// The projects' environments.
    pub project_environments: BTreeSet<(i64, String)>,
    /// The projects' releases, with the earliest receipt.
    pub project_releases: BTreeMap<(i64, String), i64>,
    /// The latest receipt per project.
    pub project_last_event: BTreeMap<i64, i64>,
}

impl BatchCounters {
    /// Counts one event on its issue; `user_key` is its user's, if it has one.
    pub fn count(&mut self, project_id: i64, issue_id: i64, event: &Event, user_key: Option<&str>, received_at: i64) {
        let seen = Seen { environment: &event.environment, release: &event.release, tags: &event.tags, user_key };
        self.add(project_id, issue_id, &seen, received_at);
    }

    fn add(&mut self, project_id: i64, issue_id: i64, seen: &Seen<'_>, received_at: i64) {
        *self.environments.entry((issue_id, seen.environment.to_string())).or_default() += 1;
        self.project_environments.insert((project_id, seen.environment.to_string()));
        if let Some(user_key) = seen.user_key {
            self.issue_users.insert((issue_id, user_key.to_string()));
            self.environment_users.insert((issue_id, seen.environment.to_string(), user_key.to_string()));
        }
        if !seen.release.is_empty() {
            let (n, first) = self.releases.entry((issue_id, seen.release.to_string())).or_insert((0, received_at));
            *n += 1;
            *first = (*first).min(received_at);
            let first = self.project_releases.entry((project_id, seen.release.to_string())).or_insert(received_at);
            *first = (*first).min(received_at);
        }
        for (key, value) in seen.tags.iter().take(MAX_TAGS_COUNTED) {
            *self.tags.entry((issue_id, key.clone(), value.clone())).or_default() += 1;
        }
        *self.hourly.entry((issue_id, received_at.div_euclid(3_600_000))).or_default() += 1;
        let last = self.project_last_event.entry(project_id).or_insert(received_at);
        *last = (*last).max(received_at);
    }
}

/// What a text bind goes through on a backend (`SqlDialect::text`).
pub(super) type TextBind = fn(&str) -> Cow<'_, str>;

/// An entry of [`BatchCounters::releases`].
pub(super) type ReleaseEntry<'a> = (&'a (i64, String), &'a (i64, i64));

/// The rows of each counter table, for a chunk of its entries: the same
/// rows whether a backend writes a table per statement or all at once.
impl BatchCounters {
    pub fn issue_user_rows<'a>(chunk: &[&'a (i64, String)], text: TextBind) -> BatchRows<'a> {
        BatchRows::of(vec![
            Column::Int(chunk.iter().map(|r| r.0).collect()),
            Column::Text(chunk.iter().map(|r| text(&r.1)).collect()),
        ])
    }

    pub fn environment_user_rows<'a>(chunk: &[&'a (i64, String, String)], text: TextBind) -> BatchRows<'a> {
        BatchRows::of(vec![
            Column::Int(chunk.iter().map(|r| r.0).collect()),
            Column::Text(chunk.iter().map(|r| text(&r.1)).collect()),
            Column::Text(chunk.iter().map(|r| text(&r.2)).collect()),
        ])
    }

    /// Issue, environment and events; the new users are added by the writer.
    pub fn environment_rows<'a>(chunk: &[(&'a (i64, String), &'a i64)], text: TextBind) -> BatchRows<'a> {
        BatchRows::of(vec![
            Column::Int(chunk.iter().map(|((issue_id, _), _)| *issue_id).collect()),
            Column::Text(chunk.iter().map(|((_, environment), _)| text(environment)).collect()),
            Column::Int(chunk.iter().map(|(_, n)| **n).collect()),
        ])
    }

    /// Issue and release, then events and earliest receipt.
    pub fn release_rows<'a>(chunk: &[ReleaseEntry<'a>], text: TextBind) -> BatchRows<'a> {
        BatchRows::of(vec![
            Column::Int(chunk.iter().map(|((issue_id, _), _)| *issue_id).collect()),
            Column::Text(chunk.iter().map(|((_, release), _)| text(release)).collect()),
            Column::Int(chunk.iter().map(|(_, (n, _))| *n).collect()),
            Column::Int(chunk.iter().map(|(_, (_, first_seen))| *first_seen).collect()),
        ])
    }

    pub fn tag_rows<'a>(chunk: &[(&'a (i64, String, String), &'a i64)], text: TextBind) -> BatchRows<'a> {
        BatchRows::of(vec![
            Column::Int(chunk.iter().map(|((issue_id, _, _), _)| *issue_id).collect()),
            Column::Text(chunk.iter().map(|((_, key, _), _)| text(key)).collect()),
            Column::Text(chunk.iter().map(|((_, _, value), _)| text(value)).collect()),
            Column::Int(chunk.iter().map(|(_, n)| **n).collect()),
        ])
    }

    pub fn hourly_rows<'a>(chunk: &[(&'a (i64, i64), &'a i64)]) -> BatchRows<'a> {
        BatchRows::of(vec![
            Column::Int(chunk.iter().map(|((issue_id, _), _)| *issue_id).collect()),
            Column::Int(chunk.iter().map(|((_, hour), _)| *hour).collect()),
            Column::Int(chunk.iter().map(|(_, n)| **n).collect()),
        ])
    }

    pub fn project_environment_rows<'a>(chunk: &[&'a (i64, String)], text: TextBind) -> BatchRows<'a> {
        BatchRows::of(vec![
            Column::Int(chunk.iter().map(|(project_id, _)| *project_id).collect()),
            Column::Text(chunk.iter().map(|(_, environment)| text(environment)).collect()),
        ])
    }

    pub fn project_release_rows<'a>(chunk: &[(&'a (i64, String), &'a i64)], text: TextBind) -> BatchRows<'a> {
        BatchRows::of(vec![
            Column::Int(chunk.iter().map(|((project_id, _), _)| *project_id).collect()),
            Column::Text(chunk.iter().map(|((_, release), _)| text(release)).collect()),
            Column::Int(chunk.iter().map(|(_, first_seen)| **first_seen).collect()),
        ])
    }

    pub fn project_last_event_rows(&self) -> BatchRows<'_> {
        BatchRows::of(vec![
            Column::Int(self.project_last_event.keys().copied().collect()),
            Column::Int(self.project_last_event.values().copied().collect()),
        ])
    }
}

/// Each counter table's upsert after its rows' source (`{}`), the rows'
/// columns in the table's order; `{least}` is the backend's minimum.
pub(super) const RELEASES_UPSERT: &str = "INSERT INTO issue_releases (issue_id, release, event_count, first_seen) {} \
     ON CONFLICT (issue_id, release) DO UPDATE SET \
     event_count = issue_releases.event_count + excluded.event_count, \
     first_seen = {least}(issue_releases.first_seen, excluded.first_seen)";
pub(super) const TAGS_UPSERT: &str = "INSERT INTO issue_tags (issue_id, key, value, event_count) {} \
     ON CONFLICT (issue_id, key, value) DO UPDATE SET event_count = issue_tags.event_count + excluded.event_count";
pub(super) const HOURLY_UPSERT: &str = "INSERT INTO issue_hourly (issue_id, hour, event_count) {} \
     ON CONFLICT (issue_id, hour) DO UPDATE SET event_count = issue_hourly.event_count + excluded.event_count";
/// The project rows: DO NOTHING takes no lock on a row that exists.
pub(super) const PROJECT_ENVIRONMENTS_INSERT: &str =
    "INSERT INTO project_environments (project_id, environment) {} ON CONFLICT DO NOTHING";
/// A release's first sighting is its earliest event, in whatever order
/// batches arrive; rows already earliest are left alone (no write, no lock).
pub(super) const PROJECT_RELEASES_UPSERT: &str = "INSERT INTO project_releases (project_id, release, first_seen) {} \
     ON CONFLICT (project_id, release) DO UPDATE SET first_seen = excluded.first_seen \
     WHERE excluded.first_seen < project_releases.first_seen";
pub(super) const ENVIRONMENTS_CONFLICT: &str = "ON CONFLICT (issue_id, environment) DO UPDATE SET \
     event_count = issue_environments.event_count + excluded.event_count, \
     user_count = issue_environments.user_count + excluded.user_count";

/// `template` with its rows' source in place of `{}` and `least` for
/// `{least}`.
pub(super) fn fill(template: &str, source: &str, least: &str) -> String {
    template.replacen("{}", source, 1).replace("{least}", least)
}

/// Defines `write_batch_counters` for one backend: `$conn` is its connection
/// type, `$text` what a text bind goes through, `$least`/`$greatest` its
/// two-argument minimum and maximum (`q`, `SQL` and `bind_rows` are the
/// backend's own).
///
/// SQLite writes each table with its own statements (in the process they
/// cost no round trip). PostgreSQL writes them all with one statement of
/// data-modifying `WITH` clauses, each run once and to completion, on its
/// own table, with the new users of an issue (or of its environment) read
/// from the insert's `RETURNING` inside the statement: one round trip for
/// every counter of the batch.
macro_rules! batch_counter_queries {
    ($conn:ty, $text:path, $least:expr, $greatest:expr) => {
        /// Adds a batch's counters, in the batch's transaction.
        async fn write_batch_counters(
            conn: &mut $conn,
            counters: &super::batch_counters::BatchCounters,
        ) -> Result<(), sqlx::Error> {
            if SQL.batch_arrays {
                write_batch_counters_at_once(conn, counters).await
            } else {
                write_batch_counters_table_by_table(conn, counters).await
            }
        }

        async fn write_batch_counters_at_once(
            conn: &mut $conn,
            counters: &super::batch_counters::BatchCounters,
        ) -> Result<(), sqlx::Error> {
            use super::batch_counters::*;
            let issue_users: Vec<_> = counters.issue_users.iter().collect();
            let environment_users: Vec<_> = counters.environment_users.iter().collect();
            let environments: Vec<_> = counters.environments.iter().collect();
            let releases: Vec<_> = counters.releases.iter().collect();
            let tags: Vec<_> = counters.tags.iter().collect();
            let hourly: Vec<_> = counters.hourly.iter().collect();
            let project_environments: Vec<_> = counters.project_environments.iter().collect();
            let project_releases: Vec<_> = counters.project_releases.iter().collect();
            // In the order their placeholders appear below.
            let rows = [
                BatchCounters::issue_user_rows(&issue_users, $text),
                BatchCounters::environment_user_rows(&environment_users, $text),
                BatchCounters::environment_rows(&environments, $text),
                BatchCounters::release_rows(&releases, $text),
                BatchCounters::tag_rows(&tags, $text),
                BatchCounters::hourly_rows(&hourly),
                BatchCounters::project_environment_rows(&project_environments, $text),
                BatchCounters::project_release_rows(&project_releases, $text),
                counters.project_last_event_rows(),
            ];
            static AT_ONCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
            let sql = AT_ONCE.get_or_init(|| {
                let source = |rows: &super::batch_rows::BatchRows<'_>| rows.insert_source(true);
                q(&format!(
                    "WITH new_issue_users AS (INSERT INTO issue_users (issue_id, user_key) {} \
                       ON CONFLICT DO NOTHING RETURNING issue_id), \
                     issue_user_counts AS (UPDATE issues SET user_count = issues.user_count + n.n \
                       FROM (SELECT issue_id, COUNT(*) AS n FROM new_issue_users GROUP BY issue_id) AS n \
                       WHERE issues.id = n.issue_id), \
                     new_environment_users AS (INSERT INTO issue_environment_users (issue_id, environment, user_key) {} \
                       ON CONFLICT DO NOTHING RETURNING issue_id, environment), \
                     environments AS (INSERT INTO issue_environments (issue_id, environment, event_count, user_count) \
                       SELECT v.column1, v.column2, v.column3, COALESCE(n.n, 0) FROM {} \
                       LEFT JOIN (SELECT issue_id, environment, COUNT(*) AS n FROM new_environment_users \
                         GROUP BY issue_id, environment) AS n ON n.issue_id = v.column1 AND n.environment = v.column2 \
                       {}), \
                     releases AS ({}), tags AS ({}), hourly AS ({}), \
                     project_environments AS ({}), project_releases AS ({}), \
                     last_event AS (UPDATE projects SET last_event_at = {}(COALESCE(last_event_at, 0), v.column2) \
                       FROM {} WHERE projects.id = v.column1) \
                     SELECT 1",
                    source(&rows[0]),
                    source(&rows[1]),
                    rows[2].table(true, "v"),
                    ENVIRONMENTS_CONFLICT,
                    fill(RELEASES_UPSERT, &source(&rows[3]), $least),
                    fill(TAGS_UPSERT, &source(&rows[4]), $least),
                    fill(HOURLY_UPSERT, &source(&rows[5]), $least),
                    fill(PROJECT_ENVIRONMENTS_INSERT, &source(&rows[6]), $least),
                    fill(PROJECT_RELEASES_UPSERT, &source(&rows[7]), $least),
                    $greatest,
                    rows[8].table(true, "v"),
                ))
            });
            let mut query = sqlx::query(sql);
            for rows in &rows {
                query = bind_rows(query, rows);
            }
            query.execute(&mut *conn).await?;
            Ok(())
        }

        async fn write_batch_counters_table_by_table(
            conn: &mut $conn,
            counters: &super::batch_counters::BatchCounters,
        ) -> Result<(), sqlx::Error> {
            use super::batch_counters::*;
            use super::batch_rows::Column;
            use sqlx::Row as _;
            // The users new to an issue (the rows the insert returns),
            // added to its count. An issue whose ignore ends at a number of
            // users has counted them event by event already (`ingest_sql.rs`):
            // they are not new here.
            let mut new_issue_users = std::collections::BTreeMap::<i64, i64>::new();
            let rows: Vec<_> = counters.issue_users.iter().collect();
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let rows = BatchCounters::issue_user_rows(chunk, $text);
                let sql = q(&format!(
                    "INSERT INTO issue_users (issue_id, user_key) {} ON CONFLICT DO NOTHING RETURNING issue_id",
                    rows.insert_source(false)
                ));
                for row in bind_rows(sqlx::query(&sql).persistent(false), &rows).fetch_all(&mut *conn).await? {
                    *new_issue_users.entry(row.try_get(0)?).or_default() += 1;
                }
            }
            let rows: Vec<_> = new_issue_users.into_iter().collect();
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let rows = super::batch_rows::BatchRows::of(vec![
                    Column::Int(chunk.iter().map(|r| r.0).collect()),
                    Column::Int(chunk.iter().map(|r| r.1).collect()),
                ]);
                let sql = q(&format!(
                    "UPDATE issues SET user_count = issues.user_count + v.column2 FROM {} WHERE issues.id = v.column1",
                    rows.table(false, "v")
                ));
                bind_rows(sqlx::query(&sql).persistent(false), &rows).execute(&mut *conn).await?;
            }
            // The users new to an issue's environment, counted per
            // environment: the rows the insert returns are the new ones.
            let mut new_users = std::collections::BTreeMap::<(i64, String), i64>::new();
            let rows: Vec<_> = counters.environment_users.iter().collect();
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let rows = BatchCounters::environment_user_rows(chunk, $text);
                let sql = q(&format!(
                    "INSERT INTO issue_environment_users (issue_id, environment, user_key) {} \
                     ON CONFLICT DO NOTHING RETURNING issue_id, environment",
                    rows.insert_source(false)
                ));
                for row in bind_rows(sqlx::query(&sql).persistent(false), &rows).fetch_all(&mut *conn).await? {
                    *new_users.entry((row.try_get(0)?, row.try_get(1)?)).or_default() += 1;
                }
            }
            let rows: Vec<_> = counters.environments.iter().collect();
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let mut rows = BatchCounters::environment_rows(chunk, $text);
                // Keyed as the returned rows are (a backend's text).
                let users = chunk
                    .iter()
                    .map(|((issue_id, environment), _)| {
                        new_users.get(&(*issue_id, $text(environment).to_string())).copied().unwrap_or(0)
                    })
                    .collect();
                rows.columns.push(Column::Int(users));
                let sql = q(&format!(
                    "INSERT INTO issue_environments (issue_id, environment, event_count, user_count) {} {}",
                    rows.insert_source(false),
                    ENVIRONMENTS_CONFLICT
                ));
                bind_rows(sqlx::query(&sql).persistent(false), &rows).execute(&mut *conn).await?;
            }
            let rows: Vec<_> = counters.releases.iter().collect();
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let rows = BatchCounters::release_rows(chunk, $text);
                let sql = q(&fill(RELEASES_UPSERT, &rows.insert_source(false), $least));
                bind_rows(sqlx::query(&sql).persistent(false), &rows).execute(&mut *conn).await?;
            }
            let rows: Vec<_> = counters.tags.iter().collect();
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let rows = BatchCounters::tag_rows(chunk, $text);
                let sql = q(&fill(TAGS_UPSERT, &rows.insert_source(false), $least));
                bind_rows(sqlx::query(&sql).persistent(false), &rows).execute(&mut *conn).await?;
            }
            let rows: Vec<_> = counters.hourly.iter().collect();
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let rows = BatchCounters::hourly_rows(chunk);
                let sql = q(&fill(HOURLY_UPSERT, &rows.insert_source(false), $least));
                bind_rows(sqlx::query(&sql).persistent(false), &rows).execute(&mut *conn).await?;
            }
            let rows: Vec<_> = counters.project_environments.iter().collect();
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let rows = BatchCounters::project_environment_rows(chunk, $text);
                let sql = q(&fill(PROJECT_ENVIRONMENTS_INSERT, &rows.insert_source(false), $least));
                bind_rows(sqlx::query(&sql).persistent(false), &rows).execute(&mut *conn).await?;
            }
            let rows: Vec<_> = counters.project_releases.iter().collect();
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let rows = BatchCounters::project_release_rows(chunk, $text);
                let sql = q(&fill(PROJECT_RELEASES_UPSERT, &rows.insert_source(false), $least));
                bind_rows(sqlx::query(&sql).persistent(false), &rows).execute(&mut *conn).await?;
            }
            for (project_id, at) in &counters.project_last_event {
                let sql = format!(
                    "UPDATE projects SET last_event_at = {}(COALESCE(last_event_at, 0), ?) WHERE id = ?",
                    $greatest
                );
                sqlx::query(&q(&sql)).bind(*at).bind(*project_id).execute(&mut *conn).await?;
            }
            Ok(())
        }
    };
}

pub(super) use batch_counter_queries;

#[cfg(test)]
mod tests {
    use super::*;

    fn count(
        counters: &mut BatchCounters,
        issue_id: i64,
        environment: &str,
        release: &str,
        tag: Option<(&str, &str)>,
        at: i64,
    ) {
        let tags = tag.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let user_key = Some("id:1").filter(|_| issue_id == 10);
        counters.add(1, issue_id, &Seen { environment, release, tags: &tags, user_key }, at);
    }

    #[test]
    fn a_batch_sums_its_events_per_counter_row() {
        let mut counters = BatchCounters::default();
        count(&mut counters, 10, "prod", "1.0", Some(("region", "eu")), 7_200_000);
        count(&mut counters, 10, "prod", "1.0", Some(("region", "us")), 3_600_001);
        count(&mut counters, 11, "staging", "", None, 3_600_002);
        assert_eq!(counters.environments[&(10, "prod".into())], 2);
        assert_eq!(counters.environment_users.len(), 1, "one user, twice in one environment");
        assert_eq!(counters.issue_users.len(), 1, "one user, twice on one issue");
        assert_eq!(counters.releases[&(10, "1.0".into())], (2, 3_600_001));
        assert!(!counters.releases.contains_key(&(11, String::new())), "no release, no release row");
        assert_eq!(counters.tags.len(), 2);
        assert_eq!(counters.hourly[&(10, 1)], 1);
        assert_eq!(counters.hourly[&(10, 2)], 1);
        assert_eq!(counters.project_environments.len(), 2);
        assert_eq!(counters.project_releases[&(1, "1.0".into())], 3_600_001);
        assert_eq!(counters.project_last_event[&1], 7_200_000);
    }
}
