//! Bar charts of events over time, laid out here and drawn as SVG by the
//! templates: the numbers come from `issue_hourly`, nothing runs in the
//! browser.

use super::time_text;
use crate::store::HourCount;
use serde::Serialize;

pub const HOUR_MS: i64 = 3_600_000;

#[derive(Debug, Serialize)]
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    pub count: i64,
    pub label: String,
}

#[derive(Debug, Serialize)]
pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub bars: Vec<Bar>,
    pub total: i64,
    pub max: i64,
}

/// Draws `counts` as bars of `slot` width each, the last bar the newest.
fn lay_out(counts: Vec<(i64, String)>, slot: f64, height: f64) -> Chart {
    let max = counts.iter().map(|(c, _)| *c).max().unwrap_or(0);
    let total = counts.iter().map(|(c, _)| *c).sum();
    let gap = (slot * 0.2).max(1.0);
    let bars: Vec<Bar> = counts
        .into_iter()
        .enumerate()
        .map(|(i, (count, label))| {
            // A one-event hour still shows; an empty one is a thin baseline.
            let h = if count == 0 || max == 0 { 1.0 } else { (count as f64 / max as f64 * height).max(2.0) };
            Bar { x: i as f64 * slot, y: height - h, width: slot - gap, height: h, count, label }
        })
        .collect();
    Chart { width: bars.len() as f64 * slot, height, bars, total, max }
}

/// The last `hours` hours up to the one holding `now`, one bar each.
pub fn hourly(counts: &[HourCount], issue_id: i64, now: i64, hours: i64, slot: f64, height: f64) -> Chart {
    let now_hour = now.div_euclid(HOUR_MS);
    let bars = (now_hour - hours + 1..=now_hour)
        .map(|hour| {
            let count = counts.iter().filter(|c| c.issue_id == issue_id && c.hour == hour).map(|c| c.count).sum();
            let start = time_text::exact(hour * HOUR_MS);
            let noun = if count == 1 { "event" } else { "events" };
            (count, format!("{count} {noun} in the hour from {start}"))
        })
        .collect();
    lay_out(bars, slot, height)
}

/// The last `days` days (UTC) up to today, one bar each.
pub fn daily(counts: &[HourCount], issue_id: i64, now: i64, days: i64, slot: f64, height: f64) -> Chart {
    let today = now.div_euclid(24 * HOUR_MS);
    let bars = (today - days + 1..=today)
        .map(|day| {
            let count =
                counts.iter().filter(|c| c.issue_id == issue_id && c.hour.div_euclid(24) == day).map(|c| c.count).sum();
            let date = time_text::exact(day * 24 * HOUR_MS);
            let date = date.split(' ').next().unwrap_or_default().to_string();
            let noun = if count == 1 { "event" } else { "events" };
            (count, format!("{count} {noun} on {date}"))
        })
        .collect();
    lay_out(bars, slot, height)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_scaled_to_the_busiest_slot_and_end_now() {
        let now = 100 * HOUR_MS + 5;
        let counts = [
            HourCount { issue_id: 1, hour: 100, count: 4 },
            HourCount { issue_id: 1, hour: 98, count: 2 },
            HourCount { issue_id: 2, hour: 100, count: 50 },
            HourCount { issue_id: 1, hour: 50, count: 9 },
        ];
        let chart = hourly(&counts, 1, now, 24, 4.0, 20.0);
        assert_eq!(chart.bars.len(), 24);
        assert_eq!((chart.total, chart.max), (6, 4));
        assert_eq!(chart.bars[23].height, 20.0);
        assert_eq!(chart.bars[21].height, 10.0);
        assert_eq!(chart.bars[0].height, 1.0);
        assert_eq!(chart.width, 96.0);
        assert!(chart.bars[23].label.starts_with("4 events in the hour from"));
        let days = daily(&counts, 1, now, 30, 6.0, 40.0);
        assert_eq!(days.total, 15);
        assert_eq!(days.bars[29].count, 6);
    }
}
