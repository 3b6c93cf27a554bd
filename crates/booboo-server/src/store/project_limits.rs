//! A project's limits as settings: the values, their bounds, and the one
//! reading of each from text, shared by the CLI, the API and the dashboard
//! (so all three refuse the same things with the same words). The engines
//! that act on them (retention, quotas) read them from the store on every
//! batch or tick; nothing here caches them.

use serde::Serialize;
use std::fmt;

/// The most stored events a project may be given: more is a typing slip.
pub const MAX_EVENTS_CEILING: i64 = 1_000_000_000;
/// A hundred years.
pub const MAX_RETENTION_DAYS: i64 = 36_500;
/// The most events a rate may allow per period.
pub const MAX_RATE_COUNT: i64 = 1_000_000_000;

/// So many events per so many seconds, written like `100/min`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: i64,
    pub seconds: i64,
}

impl RateLimit {
    /// Reads `N/UNIT`, where the unit is `s`/`sec`/`second`, `m`/`min`/`minute`,
    /// `h`/`hour` or `d`/`day` (spaces around the parts and plurals allowed).
    pub fn parse(text: &str) -> Result<RateLimit, String> {
        let text = text.trim();
        let Some((count, unit)) = text.split_once('/') else {
            return Err(format!("{text:?} is not a rate; write it like 100/min, 5000/hour or 10/s"));
        };
        let count: i64 = count
            .trim()
            .replace('_', "")
            .parse()
            .map_err(|_| format!("{text:?}: {:?} is not a whole number of events", count.trim()))?;
        if !(1..=MAX_RATE_COUNT).contains(&count) {
            return Err(format!("{text:?}: the number of events must be between 1 and {MAX_RATE_COUNT}"));
        }
        let seconds = match unit.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hour" | "hours" => 3_600,
            "d" | "day" | "days" => 86_400,
            other => {
                return Err(format!("{text:?}: {other:?} is not a period; use s, min, hour or day"));
            }
        };
        Ok(RateLimit { count, seconds })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seconds {
            1 => write!(f, "{}/s", self.count),
            60 => write!(f, "{}/min", self.count),
            3_600 => write!(f, "{}/hour", self.count),
            86_400 => write!(f, "{}/day", self.count),
            s => write!(f, "{}/{s}s", self.count),
        }
    }
}

impl Serialize for RateLimit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A project's own limits; `None` means the installation's default
/// (`max_events`, `retention_days`) or off (`rate_limit`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProjectLimits {
    pub max_events: Option<i64>,
    pub retention_days: Option<i64>,
    pub rate_limit: Option<RateLimit>,
    pub spike_guard: bool,
}

/// The installation's defaults a project's limits fall back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitDefaults {
    pub max_events: i64,
    pub retention_days: i64,
}

/// The limits that apply to a project: its own, or the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EffectiveLimits {
    pub max_events: i64,
    pub retention_days: i64,
    pub rate_limit: Option<RateLimit>,
    pub spike_guard: bool,
}

impl ProjectLimits {
    /// Builds the limits from the stored columns; a rate needs both halves.
    pub fn from_columns(
        max_events: Option<i64>,
        retention_days: Option<i64>,
        rate_limit_count: Option<i64>,
        rate_limit_seconds: Option<i64>,
        spike_guard: bool,
    ) -> ProjectLimits {
        let rate_limit = match (rate_limit_count, rate_limit_seconds) {
            (Some(count), Some(seconds)) => Some(RateLimit { count, seconds }),
            _ => None,
        };
        ProjectLimits { max_events, retention_days, rate_limit, spike_guard }
    }

    pub fn effective(&self, defaults: LimitDefaults) -> EffectiveLimits {
        EffectiveLimits {
            max_events: self.max_events.unwrap_or(defaults.max_events),
            retention_days: self.retention_days.unwrap_or(defaults.retention_days),
            rate_limit: self.rate_limit,
            spike_guard: self.spike_guard,
        }
    }
}

/// What a change does to one limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LimitChange<T> {
    /// Leave it as it is.
    #[default]
    Leave,
    /// Back to the installation's default (or off, for a rate).
    Reset,
    Set(T),
}

/// A change to a project's limits; fields left as `Leave` keep their value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProjectLimitsPatch {
    pub max_events: LimitChange<i64>,
    pub retention_days: LimitChange<i64>,
    pub rate_limit: LimitChange<RateLimit>,
    pub spike_guard: Option<bool>,
}

impl ProjectLimitsPatch {
    pub fn is_empty(&self) -> bool {
        *self == ProjectLimitsPatch::default()
    }

    /// The first out-of-bounds value, as (field, message); values built by
    /// the readers below always pass, so the store can refuse hand-built ones.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if let LimitChange::Set(n) = self.max_events {
            check_max_events(n).map_err(|m| ("max_events", m))?;
        }
        if let LimitChange::Set(d) = self.retention_days {
            check_retention_days(d).map_err(|m| ("retention_days", m))?;
        }
        if let LimitChange::Set(rate) = self.rate_limit {
            if !(1..=MAX_RATE_COUNT).contains(&rate.count) || !(1..=86_400).contains(&rate.seconds) {
                return Err(("rate_limit", format!("{rate} is outside 1/day to {MAX_RATE_COUNT}/s")));
            }
        }
        Ok(())
    }
}

pub fn check_max_events(n: i64) -> Result<i64, String> {
    if (1..=MAX_EVENTS_CEILING).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} is not a number of stored events between 1 and {MAX_EVENTS_CEILING}"))
    }
}

pub fn check_retention_days(d: i64) -> Result<i64, String> {
    if (1..=MAX_RETENTION_DAYS).contains(&d) {
        Ok(d)
    } else {
        Err(format!("{d} is not a number of days between 1 and {MAX_RETENTION_DAYS}"))
    }
}

fn whole_number(text: &str) -> Result<i64, String> {
    text.replace('_', "").parse().map_err(|_| format!("{text:?} is not a whole number"))
}

/// Reads `--max-events`: a number, or `default`.
pub fn read_max_events(text: &str) -> Result<LimitChange<i64>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("default") {
        return Ok(LimitChange::Reset);
    }
    Ok(LimitChange::Set(check_max_events(whole_number(text)?)?))
}

/// Reads `--retention-days`: a number of days, or `default`.
pub fn read_retention_days(text: &str) -> Result<LimitChange<i64>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("default") {
        return Ok(LimitChange::Reset);
    }
    Ok(LimitChange::Set(check_retention_days(whole_number(text)?)?))
}

/// Reads `--rate-limit`: a rate such as `100/min`, or `off`.
pub fn read_rate_limit(text: &str) -> Result<LimitChange<RateLimit>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") || text.eq_ignore_ascii_case("default") {
        return Ok(LimitChange::Reset);
    }
    Ok(LimitChange::Set(RateLimit::parse(text)?))
}

/// Reads `--spike-guard`: `on` or `off`.
pub fn read_switch(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("{:?} is neither on nor off", text.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_in_every_unit_and_print_back() {
        for (text, count, seconds, shown) in [
            ("100/min", 100, 60, "100/min"),
            ("5000/hour", 5000, 3600, "5000/hour"),
            ("10/s", 10, 1, "10/s"),
            ("10/sec", 10, 1, "10/s"),
            (" 7 / m ", 7, 60, "7/min"),
            ("3/h", 3, 3600, "3/hour"),
            ("2/d", 2, 86_400, "2/day"),
            ("1_000/DAY", 1000, 86_400, "1000/day"),
        ] {
            let rate = RateLimit::parse(text).unwrap();
            assert_eq!(rate, RateLimit { count, seconds }, "{text}");
            assert_eq!(rate.to_string(), shown);
            assert_eq!(RateLimit::parse(shown).unwrap(), rate);
        }
    }

    #[test]
    fn bad_rates_say_what_is_wrong() {
        for (text, says) in [
            ("100", "write it like"),
            ("abc/min", "whole number"),
            ("-5/min", "between 1"),
            ("0/min", "between 1"),
            ("100/fortnight", "not a period"),
            ("100/", "not a period"),
            ("99999999999/s", "between 1"),
        ] {
            let err = RateLimit::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn limits_read_default_off_and_refuse_absurd_values() {
        assert_eq!(read_max_events("default"), Ok(LimitChange::Reset));
        assert_eq!(read_max_events("1000"), Ok(LimitChange::Set(1000)));
        assert!(read_max_events("0").unwrap_err().contains("between 1"));
        assert!(read_max_events("-3").unwrap_err().contains("between 1"));
        assert!(read_max_events("1000000001").unwrap_err().contains("between 1"));
        assert!(read_max_events("lots").unwrap_err().contains("whole number"));
        assert_eq!(read_retention_days("Default"), Ok(LimitChange::Reset));
        assert_eq!(read_retention_days("30"), Ok(LimitChange::Set(30)));
        assert!(read_retention_days("36501").unwrap_err().contains("36500"));
        assert_eq!(read_rate_limit("off"), Ok(LimitChange::Reset));
        assert_eq!(read_rate_limit("5/s"), Ok(LimitChange::Set(RateLimit { count: 5, seconds: 1 })));
        assert_eq!(read_switch("on"), Ok(true));
        assert_eq!(read_switch("OFF"), Ok(false));
        assert!(read_switch("maybe").is_err());
    }

    #[test]
    fn effective_limits_fall_back_to_the_defaults() {
        let defaults = LimitDefaults { max_events: 100_000, retention_days: 90 };
        let own = ProjectLimits::from_columns(Some(5), None, Some(10), Some(60), true);
        let effective = own.effective(defaults);
        assert_eq!(effective.max_events, 5);
        assert_eq!(effective.retention_days, 90);
        assert_eq!(effective.rate_limit, Some(RateLimit { count: 10, seconds: 60 }));
        assert!(effective.spike_guard);
        assert_eq!(ProjectLimits::from_columns(None, None, Some(10), None, false).rate_limit, None);
    }

    #[test]
    fn a_patch_refuses_hand_built_values_out_of_bounds() {
        let bad = ProjectLimitsPatch { retention_days: LimitChange::Set(0), ..Default::default() };
        assert_eq!(bad.check().unwrap_err().0, "retention_days");
        let bad_rate = ProjectLimitsPatch {
            rate_limit: LimitChange::Set(RateLimit { count: 1, seconds: 0 }),
            ..Default::default()
        };
        assert_eq!(bad_rate.check().unwrap_err().0, "rate_limit");
        assert!(ProjectLimitsPatch::default().is_empty());
    }
}
