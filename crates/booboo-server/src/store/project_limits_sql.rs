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
