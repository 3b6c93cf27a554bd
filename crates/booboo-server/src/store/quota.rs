//! Quotas that keep counting: the pure rule that decides, event by event,
//! whether a project may still store payloads. Over its quota an event is
//! still grouped and counted on its issue; only its payload is not stored.
//!
//! Each quota is a fixed window with a count of the payloads stored in it
//! (the `quota_windows` rows, read and locked in the batch's transaction by
//! `quota_sql.rs`, so every node shares one count). Two quotas exist:
//!
//! - rate limits: at most `count` payloads per `seconds`, the project's own
//!   and the installation's (all projects together), each a window of its own;
//! - the spike guard (when on): at most [`SPIKE_MULTIPLE`] times the
//!   project's average hourly events of the last [`SPIKE_HISTORY_HOURS`]
//!   hours (the current hour excluded), never below [`SPIKE_FLOOR_PER_HOUR`].
//!
//! No clock and no I/O here: times are the events' receive times, passed in.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};

/// The spike guard caps an hour at this multiple of the recent average.
pub const SPIKE_MULTIPLE: i64 = 5;
/// ... and never below this many payloads an hour, so a quiet project's
/// first busy hour is not mistaken for a spike.
pub const SPIKE_FLOOR_PER_HOUR: i64 = 1_000;
/// The hours the recent average is taken over.
pub const SPIKE_HISTORY_HOURS: i64 = 24;

pub const HOUR_MS: i64 = 3_600_000;

pub use super::project_limits::RateLimit;

/// A rate limit from its two stored columns; `None` unless the count is
/// not negative and the period positive.
pub fn rate_limit_from_columns(count: Option<i64>, seconds: Option<i64>) -> Option<RateLimit> {
    match (count, seconds) {
        (Some(count), Some(seconds)) if count >= 0 && seconds > 0 => Some(RateLimit { count, seconds }),
        _ => None,
    }
}

fn window_ms(limit: RateLimit) -> i64 {
    limit.seconds.saturating_mul(1000)
}

/// Why an event's payload was not stored although it was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStoredReason {
    RateLimit,
    SpikeGuard,
}

impl NotStoredReason {
    /// The name `/metrics` counts it under. Both land in the issue's
    /// `not_stored_rate_limit`: to a reader both are the project's quota.
    pub fn as_str(self) -> &'static str {
        match self {
            NotStoredReason::RateLimit => "rate_limit",
            NotStoredReason::SpikeGuard => "spike_guard",
        }
    }
}

/// One fixed window: when it started (ms), the payloads stored in it and
/// the most it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub started_at: i64,
    pub stored: i64,
    pub cap: i64,
}

/// The start of the `length_ms` window that `at` falls in.
pub fn window_start(at: i64, length_ms: i64) -> i64 {
    at - at.rem_euclid(length_ms.max(1))
}

impl Window {
    /// Moves the window on to the one `at` falls in, if this one has ended
    /// (an event from before the window's start counts in this window).
    fn roll(&mut self, at: i64, length_ms: i64) {
        if at >= self.started_at.saturating_add(length_ms) {
            self.started_at = window_start(at, length_ms);
            self.stored = 0;
        }
    }

    fn full(&self) -> bool {
        self.stored >= self.cap
    }
}

/// The spike guard's cap for an hour, from the project's events over the
/// [`SPIKE_HISTORY_HOURS`] hours before it.
pub fn spike_cap(events_in_history: i64) -> i64 {
    let average = events_in_history.max(0) / SPIKE_HISTORY_HOURS;
    average.saturating_mul(SPIKE_MULTIPLE).max(SPIKE_FLOOR_PER_HOUR)
}

/// The hours (numbered as `issue_hourly.hour`) the spike cap for the hour
/// holding `at` is computed from: from the first, up to but excluding the second.
pub fn spike_history_hours(at: i64) -> (i64, i64) {
    let hour = at.div_euclid(HOUR_MS);
    (hour - SPIKE_HISTORY_HOURS, hour)
}

/// A project's quotas during one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectQuota {
    pub rate: Option<(RateLimit, Window)>,
    pub spike: Option<Window>,
}

impl ProjectQuota {
    /// Whether an event received at `at` may store its payload, and if so
    /// charges it to every window. Windows that ended roll over first.
    /// Call only for an event that will really be stored (not a duplicate):
    /// [`ProjectQuota::refund`] undoes a charge that turned out a duplicate.
    pub fn charge(&mut self, at: i64) -> Result<(), NotStoredReason> {
        if let Some((limit, window)) = &mut self.rate {
            window.roll(at, window_ms(*limit));
            window.cap = limit.count;
            if window.full() {
                return Err(NotStoredReason::RateLimit);
            }
        }
        if let Some(window) = &mut self.spike {
            // The cap was computed for the window's hour; a batch that
            // crosses into the next hour keeps it until its next batch.
            window.roll(at, HOUR_MS);
            if window.full() {
                return Err(NotStoredReason::SpikeGuard);
            }
        }
        if let Some((_, window)) = &mut self.rate {
            window.stored += 1;
        }
        if let Some(window) = &mut self.spike {
            window.stored += 1;
        }
        Ok(())
    }

    /// Gives back a charge for an event that was not stored after all.
    pub fn refund(&mut self) {
        if let Some((_, window)) = &mut self.rate {
            window.stored = (window.stored - 1).max(0);
        }
        if let Some(window) = &mut self.spike {
            window.stored = (window.stored - 1).max(0);
        }
    }
}

/// Every quota a batch is held to: the installation's (all projects
/// together) and each project's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchQuotas {
    pub installation: Option<(RateLimit, Window)>,
    /// Only projects with a rate limit or spike guard of their own.
    pub projects: BTreeMap<i64, ProjectQuota>,
}

impl BatchQuotas {
    /// Whether an event of `project_id` received at `at` may store its
    /// payload, and if so charges it to every window it counts in; a
    /// refusal charges none. The installation's limit is checked first.
    pub fn charge(&mut self, project_id: i64, at: i64) -> Result<(), NotStoredReason> {
        if let Some((limit, window)) = &mut self.installation {
            window.roll(at, window_ms(*limit));
            window.cap = limit.count;
            if window.full() {
                return Err(NotStoredReason::RateLimit);
            }
        }
        if let Some(project) = self.projects.get_mut(&project_id) {
            project.charge(at)?;
        }
        if let Some((_, window)) = &mut self.installation {
            window.stored += 1;
        }
        Ok(())
    }

    /// Gives back a charge for an event that was not stored after all (a
    /// duplicate found on insert).
    pub fn refund(&mut self, project_id: i64) {
        if let Some((_, window)) = &mut self.installation {
            window.stored = (window.stored - 1).max(0);
        }
        if let Some(project) = self.projects.get_mut(&project_id) {
            project.refund();
        }
    }
}

/// The installation-wide rate limit, on all projects together; set once
/// at start-up, read by every batch.
#[derive(Debug, Default)]
pub struct InstallationQuota {
    count: AtomicI64,
    seconds: AtomicI64,
}

impl InstallationQuota {
    pub fn set(&self, limit: Option<RateLimit>) {
        let (count, seconds) = limit.map_or((0, 0), |l| (l.count, l.seconds));
        self.count.store(count, Ordering::Release);
        self.seconds.store(seconds, Ordering::Release);
    }

    pub fn get(&self) -> Option<RateLimit> {
        rate_limit_from_columns(Some(self.count.load(Ordering::Acquire)), Some(self.seconds.load(Ordering::Acquire)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(count: i64, seconds: i64, started_at: i64, stored: i64) -> ProjectQuota {
        ProjectQuota {
            rate: Some((RateLimit { count, seconds }, Window { started_at, stored, cap: count })),
            spike: None,
        }
    }

    #[test]
    fn a_rate_limit_stores_its_count_per_window_then_starts_again() {
        let mut quota = rate(3, 60, 0, 0);
        let charged: Vec<_> = (0..5).map(|i| quota.charge(1_000 + i).is_ok()).collect();
        assert_eq!(charged, [true, true, true, false, false]);
        assert_eq!(quota.charge(59_999), Err(NotStoredReason::RateLimit));
        // The next minute is a new window.
        assert_eq!(quota.charge(60_000), Ok(()));
        assert_eq!(quota.rate.unwrap().1, Window { started_at: 60_000, stored: 1, cap: 3 });
        // A window long past rolls to the one the event falls in.
        let mut quota = rate(3, 60, 0, 3);
        assert_eq!(quota.charge(10 * 60_000 + 5), Ok(()));
        assert_eq!(quota.rate.unwrap().1.started_at, 10 * 60_000);
    }

    #[test]
    fn an_event_from_before_the_window_counts_in_the_current_window() {
        let mut quota = rate(1, 60, 60_000, 1);
        assert_eq!(quota.charge(59_000), Err(NotStoredReason::RateLimit));
    }

    #[test]
    fn a_zero_limit_stores_nothing_and_refunds_never_go_negative() {
        let mut quota = rate(0, 3600, 0, 0);
        assert_eq!(quota.charge(1), Err(NotStoredReason::RateLimit));
        let mut quota = rate(2, 60, 0, 0);
        quota.refund();
        assert_eq!(quota.rate.unwrap().1.stored, 0);
        quota.charge(1).unwrap();
        quota.refund();
        assert_eq!(quota.rate.unwrap().1.stored, 0);
    }

    #[test]
    fn the_spike_cap_is_a_multiple_of_the_recent_average_with_a_floor() {
        assert_eq!(spike_cap(0), SPIKE_FLOOR_PER_HOUR);
        assert_eq!(spike_cap(24 * 100), SPIKE_FLOOR_PER_HOUR);
        assert_eq!(spike_cap(24 * 1_000), 5_000);
        assert_eq!(spike_cap(24 * 1_000 + 23), 5_000);
        assert_eq!(spike_cap(-5), SPIKE_FLOOR_PER_HOUR);
        assert_eq!(spike_cap(i64::MAX), (i64::MAX / 24) * 5, "no overflow");
        assert_eq!(spike_history_hours(5 * HOUR_MS + 7), (5 - 24, 5));
    }

    #[test]
    fn the_spike_guard_caps_the_hour_and_both_quotas_must_have_room() {
        let mut quota = ProjectQuota { rate: None, spike: Some(Window { started_at: 0, stored: 0, cap: 2 }) };
        assert_eq!(quota.charge(10), Ok(()));
        assert_eq!(quota.charge(20), Ok(()));
        assert_eq!(quota.charge(30), Err(NotStoredReason::SpikeGuard));
        assert_eq!(quota.charge(HOUR_MS), Ok(()), "a new hour starts with room");

        // The rate limit is checked first, and a refusal by either charges neither.
        let mut quota = rate(1, 60, 0, 0);
        quota.spike = Some(Window { started_at: 0, stored: 0, cap: 1 });
        assert_eq!(quota.charge(1), Ok(()));
        assert_eq!(quota.charge(2), Err(NotStoredReason::RateLimit));
        assert_eq!(quota.charge(60_000), Err(NotStoredReason::SpikeGuard));
        assert_eq!(quota.rate.unwrap().1.stored, 0);
        assert_eq!(quota.spike.unwrap().stored, 1);
    }

    #[test]
    fn the_installation_limit_counts_all_projects_together_and_each_project_its_own() {
        let mut quotas = BatchQuotas {
            installation: Some((RateLimit { count: 3, seconds: 60 }, Window { started_at: 0, stored: 0, cap: 3 })),
            projects: BTreeMap::from([(1, rate(1, 60, 0, 0))]),
        };
        assert_eq!(quotas.charge(1, 10), Ok(()));
        assert_eq!(quotas.charge(1, 11), Err(NotStoredReason::RateLimit), "project 1's own limit");
        assert_eq!(quotas.charge(2, 12), Ok(()));
        assert_eq!(quotas.charge(3, 13), Ok(()));
        assert_eq!(quotas.charge(2, 14), Err(NotStoredReason::RateLimit), "the installation's limit");
        assert_eq!(quotas.installation.unwrap().1.stored, 3);
        quotas.refund(1);
        assert_eq!((quotas.installation.unwrap().1.stored, quotas.projects[&1].rate.unwrap().1.stored), (2, 0));
        assert_eq!(quotas.charge(4, 60_000), Ok(()), "a new minute");
        let mut none = BatchQuotas::default();
        assert_eq!(none.charge(7, 0), Ok(()));
    }

    #[test]
    fn limits_need_both_columns_positive() {
        assert_eq!(rate_limit_from_columns(Some(100), Some(60)), Some(RateLimit { count: 100, seconds: 60 }));
        assert_eq!(rate_limit_from_columns(Some(100), None), None);
        assert_eq!(rate_limit_from_columns(None, Some(60)), None);
        assert_eq!(rate_limit_from_columns(Some(-1), Some(60)), None);
        assert_eq!(rate_limit_from_columns(Some(5), Some(0)), None);
        let installation = InstallationQuota::default();
        assert_eq!(installation.get(), None);
        installation.set(Some(RateLimit { count: 5, seconds: 3600 }));
        assert_eq!(installation.get(), Some(RateLimit { count: 5, seconds: 3600 }));
        installation.set(None);
        assert_eq!(installation.get(), None);
    }
}
