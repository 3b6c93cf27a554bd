//! The project-limit queries, written once with `?` placeholders; each
//! backend turns them into its own with its `q`.

/// Every project's own limits, by id.
pub(super) const ALL_LIMITS: &str = "SELECT id, max_events, retention_days, rate_limit_count, rate_limit_seconds, \
     spike_guard FROM projects ORDER BY id";

/// Applies a patch in one statement, so a field the patch leaves keeps
/// whatever a concurrent change wrote. Binds, in order: leave max_events,
/// its value; leave retention_days, its value; leave the rate, its count,
/// leave the rate, its seconds; leave spike_guard, its value; the project id.
pub(super) const SET_LIMITS: &str = "UPDATE projects SET \
     max_events = CASE WHEN ? THEN max_events ELSE ? END, \
     retention_days = CASE WHEN ? THEN retention_days ELSE ? END, \
     rate_limit_count = CASE WHEN ? THEN rate_limit_count ELSE ? END, \
     rate_limit_seconds = CASE WHEN ? THEN rate_limit_seconds ELSE ? END, \
     spike_guard = CASE WHEN ? THEN spike_guard ELSE ? END \
     WHERE id = ? \
     RETURNING max_events, retention_days, rate_limit_count, rate_limit_seconds, spike_guard";

/// The binds of `SET_LIMITS` for a patch, in order, except the project id.
pub(super) struct LimitBinds {
    pub keep_max_events: bool,
    pub max_events: Option<i64>,
    pub keep_retention_days: bool,
    pub retention_days: Option<i64>,
    pub keep_rate_limit: bool,
    pub rate_limit_count: Option<i64>,
    pub rate_limit_seconds: Option<i64>,
    pub keep_spike_guard: bool,
    pub spike_guard: bool,
}

impl LimitBinds {
    pub fn of(patch: &super::ProjectLimitsPatch) -> LimitBinds {
        use super::LimitChange;
        fn split<T: Copy>(change: LimitChange<T>) -> (bool, Option<T>) {
            match change {
                LimitChange::Leave => (true, None),
                LimitChange::Reset => (false, None),
                LimitChange::Set(v) => (false, Some(v)),
            }
        }
        let (keep_max_events, max_events) = split(patch.max_events);
        let (keep_retention_days, retention_days) = split(patch.retention_days);
        let (keep_rate_limit, rate) = split(patch.rate_limit);
        LimitBinds {
            keep_max_events,
            max_events,
            keep_retention_days,
            retention_days,
            keep_rate_limit,
            rate_limit_count: rate.map(|r| r.count),
            rate_limit_seconds: rate.map(|r| r.seconds),
            keep_spike_guard: patch.spike_guard.is_none(),
            spike_guard: patch.spike_guard.unwrap_or(false),
        }
    }
}

/// Defines the project-limit reads and writes for one backend (expanded in
/// `sqlite.rs` and `postgres.rs` like `key_sql.rs`): `$conn` is its
/// connection type; `q` and `limits_from_row` are the backend's own.
macro_rules! project_limits_queries {
    ($conn:ty) => {
        /// Every project's own limits, by project id.
        async fn all_limit_rows(conn: &mut $conn) -> Result<Vec<(i64, ProjectLimits)>, sqlx::Error> {
            let rows = sqlx::query(&q(super::project_limits_sql::ALL_LIMITS)).fetch_all(&mut *conn).await?;
            rows.iter().map(|row| Ok((row.try_get("id")?, limits_from_row(row)?))).collect()
        }

        /// Applies a checked patch to one project; `None` when it is gone.
        async fn set_limit_row(
            conn: &mut $conn,
            project_id: i64,
            patch: &ProjectLimitsPatch,
        ) -> Result<Option<ProjectLimits>, sqlx::Error> {
            let b = super::project_limits_sql::LimitBinds::of(patch);
            let row = sqlx::query(&q(super::project_limits_sql::SET_LIMITS))
                .bind(b.keep_max_events)
                .bind(b.max_events)
                .bind(b.keep_retention_days)
                .bind(b.retention_days)
                .bind(b.keep_rate_limit)
                .bind(b.rate_limit_count)
                .bind(b.keep_rate_limit)
                .bind(b.rate_limit_seconds)
                .bind(b.keep_spike_guard)
                .bind(b.spike_guard)
                .bind(project_id)
                .fetch_optional(&mut *conn)
                .await?;
            row.map(|row| limits_from_row(&row)).transpose()
        }
    };
}

pub(super) use project_limits_queries;
