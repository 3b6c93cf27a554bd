//! RFC 3339 timestamps in and out. Times are given to the core, never read
//! from a clock here.

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Reads an RFC 3339 string or a number of seconds since the Unix epoch.
pub fn parse_value(value: &Value) -> Result<OffsetDateTime, String> {
    match value {
        Value::String(text) => parse(text),
        Value::Number(n) => {
            let secs = n.as_f64().ok_or("must be a number of seconds")?;
            from_unix_seconds(secs)
        }
        other => Err(format!("must be an RFC 3339 string, got {}", crate::json_reader::kind_of(other))),
    }
}

pub fn parse(text: &str) -> Result<OffsetDateTime, String> {
    let trimmed = text.trim();
    if let Ok(t) = OffsetDateTime::parse(trimmed, &Rfc3339) {
        return Ok(t.to_offset(time::UtcOffset::UTC));
    }
    // Python's isoformat() without an offset means UTC in our protocol.
    if let Ok(t) = OffsetDateTime::parse(&format!("{trimmed}Z"), &Rfc3339) {
        return Ok(t);
    }
    Err(format!("must be an RFC 3339 time such as 2026-01-31T12:00:00Z, got {trimmed:?}"))
}

pub fn from_unix_seconds(secs: f64) -> Result<OffsetDateTime, String> {
    if !secs.is_finite() || !(0.0..=253_402_300_799.0).contains(&secs) {
        return Err("is not a plausible time".into());
    }
    // A float of seconds cannot hold nanoseconds (1769860800.813 is really
    // …800.81299996); rounding to microseconds gives back what was meant.
    let micros = (secs * 1e6).round() as i128;
    OffsetDateTime::from_unix_timestamp_nanos(micros * 1000).map_err(|e| e.to_string())
}

/// UTC, millisecond precision, `Z` suffix.
pub fn format(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t.replace_nanosecond(t.millisecond() as u32 * 1_000_000).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// Milliseconds since the epoch, the unit the store keeps.
pub fn unix_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn from_unix_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_accepts_naive_python_times() {
        let t = parse("2026-01-31T12:00:00.123456+01:00").unwrap();
        assert_eq!(format(t), "2026-01-31T11:00:00.123Z");
        assert_eq!(format(parse("2026-01-31T12:00:00").unwrap()), "2026-01-31T12:00:00Z");
        assert!(parse("yesterday").is_err());
        assert_eq!(format(from_unix_millis(unix_millis(t))), "2026-01-31T11:00:00.123Z");
        assert_eq!(format(from_unix_seconds(1_769_860_800.813).unwrap()), "2026-01-31T12:00:00.813Z");
    }
}
