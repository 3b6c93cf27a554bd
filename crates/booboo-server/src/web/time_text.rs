//! Times as people read them: "5 minutes ago" with the exact time beside.

use booboo_core::timestamp;

/// `then` relative to `now`, both in milliseconds since the epoch.
pub fn ago(then: i64, now: i64) -> String {
    let seconds = (now - then).max(0) / 1000;
    let (n, unit) = match seconds {
        0..=44 => return "just now".into(),
        45..=3_599 => ((seconds + 30) / 60, "minute"),
        3_600..=86_399 => ((seconds + 1_800) / 3_600, "hour"),
        86_400..=2_591_999 => ((seconds + 43_200) / 86_400, "day"),
        2_592_000..=31_535_999 => ((seconds + 1_296_000) / 2_592_000, "month"),
        _ => ((seconds + 15_768_000) / 31_536_000, "year"),
    };
    let n = n.max(1);
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// A wait in words, rounded up: "1 second", "14 minutes".
pub fn duration_words(ms: i64) -> String {
    let seconds = (ms.max(0) + 999) / 1000;
    let (n, unit) = if seconds < 60 { (seconds.max(1), "second") } else { ((seconds + 59) / 60, "minute") };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// `2026-01-01 12:00:00 UTC`.
pub fn exact(ms: i64) -> String {
    let text = timestamp::format(timestamp::from_unix_millis(ms));
    // RFC 3339 with a `T` and a `Z`; people read a space and "UTC" better.
    let text = text.replacen('T', " ", 1);
    let text = text.split('.').next().unwrap_or(&text).trim_end_matches('Z').to_string();
    format!("{text} UTC")
}

/// RFC 3339, for `<time datetime>`.
pub fn iso(ms: i64) -> String {
    timestamp::format(timestamp::from_unix_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_round_to_the_nearest_unit() {
        let now = 1_767_225_600_000;
        assert_eq!(ago(now - 10_000, now), "just now");
        assert_eq!(ago(now - 60_000, now), "1 minute ago");
        assert_eq!(ago(now - 5 * 60_000, now), "5 minutes ago");
        assert_eq!(ago(now - 2 * 3_600_000, now), "2 hours ago");
        assert_eq!(ago(now - 3 * 86_400_000, now), "3 days ago");
        assert_eq!(ago(now + 5_000, now), "just now");
        assert_eq!(exact(now), "2026-01-01 00:00:00 UTC");
        assert_eq!(duration_words(1), "1 second");
        assert_eq!(duration_words(14 * 60_000 + 1), "15 minutes");
    }
}
