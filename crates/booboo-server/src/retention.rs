//! Retention: keeps each project within its stored-event and age limits,
//! the installation within its disk budget, and cuts old payloads down to
//! the lighter tier. `serve` runs it as a background task every
//! `--retention-interval`; `booboo retention run [--now TIME]` runs one pass
//! (operators, and tests that need a later clock).
//!
//! Only payloads go: an issue's counts, users, first and last seen,
//! releases and hourly history never shrink, and every removed payload is
//! counted on its issue (`not_stored.retention`). Eviction never takes an
//! issue's first event, the event of a regression (both marked `kept` when
//! stored) or its latest event. Of the rest it takes from the issues with
//! the most stored events first ([`eviction_quotas`]), and within an issue
//! thins old stretches more than recent ones while keeping samples from
//! its whole life ([`choose_victims`]).
//!
//! Every write is one short transaction of at most [`PAGE`] rows, so ingest
//! waits at most for one page. With several nodes one holds a lease and runs
//! the passes; should two passes ever overlap (a lease that ran out mid-pass,
//! `booboo retention run` beside a server), each delete still counts only
//! the rows it removed, so counts stay exact.

use crate::clock;
use crate::metrics::Metrics;
use crate::store::{EventAge, Store, StoreResult};
use serde_json::Value;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Rows per transaction.
pub const PAGE: usize = 500;

/// Disk-budget rounds per pass (each evicts a page, then measures again).
const DISK_ROUNDS: usize = 40;

/// Free space SQLite keeps for new events to reuse rather than returning it
/// to the file system and growing again.
const KEEP_FREE_BYTES: u64 = 8 << 20;

const DAY_MS: i64 = 86_400_000;

/// The installation's retention settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Stored events per project when the project sets none.
    pub default_max_events: i64,
    /// Days an event is kept when the project sets none.
    pub default_retention_days: i64,
    /// The whole database's budget (`--max-disk-bytes`); `None`: no budget.
    pub max_disk_bytes: Option<u64>,
    /// Days after which events lose locals, request data and breadcrumbs
    /// (`--full-payload-days`); `None`: never.
    pub full_payload_days: Option<i64>,
    /// Time between passes of the background task.
    pub interval: Duration,
}

impl RetentionSettings {
    pub fn from_config(config: &crate::config::Config) -> RetentionSettings {
        RetentionSettings {
            default_max_events: config.default_max_events,
            default_retention_days: config.default_retention_days,
            max_disk_bytes: config.max_disk_bytes,
            full_payload_days: config.full_payload_days,
            interval: config.retention_interval,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Payloads evicted over projects' stored-event limits.
    pub over_count: u64,
    /// Payloads deleted for age.
    pub over_age: u64,
    /// Payloads evicted to bring the database within its disk budget.
    pub over_disk: u64,
    /// Issues removed: no event left and last seen before the age limit.
    pub issues_removed: u64,
    /// Payloads cut down to the lighter tier.
    pub lightened: u64,
}

/// The running task; [`Retention::stop`] ends it.
pub struct Retention {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Retention {
    pub fn start(store: Arc<dyn Store>, metrics: Arc<Metrics>, settings: RetentionSettings) -> Retention {
        let (stop, mut stopped) = watch::channel(false);
        let node = format!("node-{}", crate::secrets::new_event_id());
        // A lease long enough to outlast a slow pass, short enough that
        // another node takes over soon after this one dies.
        let lease_ms = (settings.interval.as_millis() as i64).saturating_mul(3).max(30_000);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(settings.interval) => {}
                    _ = stopped.changed() => return,
                }
                let now = clock::now_millis();
                match store.take_retention_lease(&node, now, now + lease_ms).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        metrics.retention_failed();
                        tracing::warn!("retention: cannot take its lease (the next pass retries): {e}");
                        continue;
                    }
                }
                match run_once(&*store, &settings, now, Some(&stopped)).await {
                    Ok(report) => {
                        metrics.retention("count", report.over_count);
                        metrics.retention("age", report.over_age);
                        metrics.retention("disk", report.over_disk);
                        metrics.retention("issue_age", report.issues_removed);
                        metrics.retention("lightened", report.lightened);
                        if report != RetentionReport::default() {
                            tracing::info!(?report, "retention pass");
                        }
                    }
                    Err(e) => {
                        metrics.retention_failed();
                        tracing::warn!("retention pass failed (the next one retries): {e}");
                    }
                }
            }
        });
        Retention { stop, task }
    }

    /// Stops the task; a pass in progress ends after its current page.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// One pass: age limits, then count limits, then the lighter tier, then the
/// disk budget, then space is returned. `now` is the clock the limits are
/// measured against. A pass asked to stop (`stopped` turns true) ends after
/// its current page.
pub async fn run_once(
    store: &dyn Store,
    settings: &RetentionSettings,
    now: i64,
    stopped: Option<&watch::Receiver<bool>>,
) -> StoreResult<RetentionReport> {
    let halt = Halt(stopped);
    let mut report = RetentionReport::default();
    let limits = store.project_limits_all().await?;

    for (project_id, limit) in &limits {
        let days = limit.retention_days.unwrap_or(settings.default_retention_days);
        let before = now.saturating_sub(days.saturating_mul(DAY_MS));
        loop {
            let n = store.expire_events(*project_id, before, PAGE as i64).await?;
            report.over_age += n;
            if n < PAGE as u64 || halt.asked() {
                break;
            }
        }
        loop {
            let n = store.remove_empty_issues(*project_id, before, PAGE as i64).await?;
            report.issues_removed += n;
            if n < PAGE as u64 || halt.asked() {
                break;
            }
        }
    }

    let stored: HashMap<i64, i64> = store.stored_per_project().await?.into_iter().collect();
    for (project_id, limit) in &limits {
        let max = limit.max_events.unwrap_or(settings.default_max_events).max(0);
        let have = stored.get(project_id).copied().unwrap_or(0);
        if have > max && !halt.asked() {
            report.over_count += evict_from_project(store, *project_id, (have - max) as u64, now, &halt).await?;
        }
    }

    if let Some(days) = settings.full_payload_days {
        let before = now.saturating_sub(days.saturating_mul(DAY_MS));
        loop {
            let batch = store.events_to_lighten(before, PAGE as i64).await?;
            let lightened: Vec<(i64, String)> =
                batch.iter().map(|(id, payload)| (*id, lighten_payload(payload))).collect();
            report.lightened += store.replace_lightened(&lightened).await?;
            if batch.len() < PAGE || halt.asked() {
                break;
            }
        }
    }

    if let Some(budget) = settings.max_disk_bytes {
        for _ in 0..DISK_ROUNDS {
            if halt.asked() || store.used_bytes().await? <= budget {
                break;
            }
            // The project with the most stored events gives up a page.
            let mut projects = store.stored_per_project().await?;
            projects.sort_by_key(|(id, n)| (std::cmp::Reverse(*n), *id));
            let mut evicted = 0;
            for (project_id, _) in projects {
                evicted = evict_from_project(store, project_id, PAGE as u64, now, &halt).await?;
                if evicted > 0 {
                    break;
                }
            }
            report.over_disk += evicted;
            if evicted == 0 {
                tracing::warn!(budget, "over the disk budget, but every stored event is one retention keeps");
                break;
            }
            store.reclaim_space(0).await?;
        }
    }

    if report.over_age + report.over_count + report.over_disk + report.lightened > 0 {
        store.reclaim_space(KEEP_FREE_BYTES).await?;
    }
    Ok(report)
}

/// Whether the task was asked to stop: a pass then ends after its page.
#[derive(Clone, Copy)]
struct Halt<'a>(Option<&'a watch::Receiver<bool>>);

impl Halt<'_> {
    fn asked(&self) -> bool {
        self.0.is_some_and(|s| *s.borrow())
    }
}

/// Evicts up to `excess` events of one project, a page per transaction.
async fn evict_from_project(
    store: &dyn Store,
    project_id: i64,
    excess: u64,
    now: i64,
    halt: &Halt<'_>,
) -> StoreResult<u64> {
    let issues = store.stored_per_issue(project_id).await?;
    let mut evicted = 0;
    for (issue_id, quota) in eviction_quotas(&issues, excess) {
        let ages = store.issue_event_ages(issue_id).await?;
        for page in choose_victims(&ages, quota as usize, now).chunks(PAGE) {
            evicted += store.evict_events(issue_id, page).await?;
            if halt.asked() {
                return Ok(evicted);
            }
        }
    }
    Ok(evicted)
}

/// How many events to evict from each issue, given `(issue, stored, not
/// kept)` per issue: the issues with the most stored events give first,
/// down to a common level, so a rare issue keeps all it has while a crash
/// loop gives up most of its own. Each issue keeps its kept events and its
/// latest one. The quotas add up to `excess`, or to all that may go.
pub fn eviction_quotas(issues: &[(i64, i64, i64)], excess: u64) -> Vec<(i64, u64)> {
    let excess = excess as i64;
    let evictable = |stored: i64, not_kept: i64| not_kept.saturating_sub(1).clamp(0, stored);
    let take_at = |level: i64| -> i64 {
        issues.iter().map(|&(_, stored, not_kept)| (stored - level).max(0).min(evictable(stored, not_kept))).sum()
    };
    // The highest level at which enough goes; found by bisection.
    let (mut low, mut high) = (0_i64, issues.iter().map(|i| i.1).max().unwrap_or(0));
    if take_at(0) <= excess {
        high = 0;
    }
    while low < high {
        let mid = (low + high + 1) / 2;
        if take_at(mid) >= excess {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    let level = high;
    let mut quotas: Vec<(i64, u64)> = Vec::new();
    let mut total = 0;
    let mut order: Vec<&(i64, i64, i64)> = issues.iter().collect();
    order.sort_by_key(|(id, stored, _)| (std::cmp::Reverse(*stored), *id));
    for &&(issue_id, stored, not_kept) in &order {
        let n = (stored - level).max(0).min(evictable(stored, not_kept)).min(excess - total);
        if n > 0 {
            quotas.push((issue_id, n as u64));
            total += n;
        }
    }
    quotas
}

/// Chooses `n` events of one issue to evict. Never the kept ones nor the
/// latest. Events are grouped by age in doubling spans (under a second, one
/// to two seconds old, two to four, …, days to weeks …); each step takes
/// from the group that holds the most, the older group on a tie, so every
/// span ends with about as many events as any other: the density halves as
/// age doubles, and old stretches keep samples. Within a group it takes
/// every second event, then every fourth, …, oldest first, so what stays is
/// spread evenly.
pub fn choose_victims(events: &[EventAge], n: usize, now: i64) -> Vec<i64> {
    let mut sorted: Vec<&EventAge> = events.iter().collect();
    sorted.sort_by_key(|e| (e.received_at, e.id));
    let latest = sorted.last().map(|e| e.id);
    let mut groups: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    for e in sorted.iter().filter(|e| !e.kept && Some(e.id) != latest) {
        let age_seconds = ((now - e.received_at).max(0) / 1000) as u64;
        groups.entry(u64::BITS - age_seconds.leading_zeros()).or_default().push(e.id);
    }
    // Each group in the order it gives events up, last first (popped).
    let mut heap = BinaryHeap::new();
    for (span, ids) in groups.iter_mut() {
        let mut order: Vec<(u32, usize, i64)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (if i == 0 { u32::MAX } else { i.trailing_zeros() }, i, *id))
            .collect();
        order.sort_unstable();
        order.reverse();
        *ids = order.into_iter().map(|(_, _, id)| id).collect();
        heap.push((ids.len(), *span));
    }
    let mut victims = Vec::with_capacity(n);
    while victims.len() < n {
        let Some((count, span)) = heap.pop() else { break };
        let Some(id) = groups.get_mut(&span).and_then(Vec::pop) else { continue };
        victims.push(id);
        if count > 1 {
            heap.push((count - 1, span));
        }
    }
    victims
}

/// The lighter tier of a stored payload: the exception, stack traces (file,
/// function, line, source context) and tags stay; frame locals, the request
/// and breadcrumbs go. A payload that is not a JSON object is left as it is.
pub fn lighten_payload(payload: &str) -> String {
    let Ok(Value::Object(mut event)) = serde_json::from_str::<Value>(payload) else {
        return payload.to_string();
    };
    event.remove("request");
    event.remove("breadcrumbs");
    let drop_vars = |frames: Option<&mut Value>| {
        if let Some(Value::Array(frames)) = frames {
            for frame in frames {
                if let Value::Object(frame) = frame {
                    frame.remove("vars");
                }
            }
        }
    };
    drop_vars(event.get_mut("stacktrace"));
    if let Some(Value::Array(exceptions)) = event.get_mut("exceptions") {
        for exception in exceptions {
            drop_vars(exception.get_mut("stacktrace"));
        }
    }
    Value::Object(event).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i64, received_at: i64, kept: bool) -> EventAge {
        EventAge { id, received_at, kept }
    }

    #[test]
    fn quotas_take_from_the_biggest_issues_first() {
        // Issue 1 is a crash loop, 2 is middling, 3 is rare.
        let issues = [(1, 1000, 1000), (2, 100, 100), (3, 5, 5)];
        assert_eq!(eviction_quotas(&issues, 500), vec![(1, 500)]);
        let q = eviction_quotas(&issues, 950);
        assert_eq!(q.iter().map(|(_, n)| n).sum::<u64>(), 950);
        assert!(q.iter().all(|(issue, _)| *issue != 3), "{q:?}");
        // Everything that may go: each issue keeps its latest event.
        let all = eviction_quotas(&issues, 10_000);
        assert_eq!(all, vec![(1, 999), (2, 99), (3, 4)]);
    }

    #[test]
    fn quotas_leave_kept_events_alone() {
        // Issue 1 has 10 stored, of which 8 are kept: only one may go.
        let issues = [(1, 10, 2), (2, 6, 6)];
        let q = eviction_quotas(&issues, 8);
        assert_eq!(q, vec![(1, 1), (2, 5)]);
        assert_eq!(eviction_quotas(&[], 5), vec![]);
        assert_eq!(eviction_quotas(&issues, 0), vec![]);
    }

    #[test]
    fn victims_never_include_kept_or_latest_events() {
        let events: Vec<EventAge> = (0..10).map(|i| event(i, i * 1000, i == 0 || i == 4)).collect();
        let victims = choose_victims(&events, 100, 20_000);
        assert_eq!(victims.len(), 7);
        for keep in [0, 4, 9] {
            assert!(!victims.contains(&keep), "{victims:?}");
        }
    }

    #[test]
    fn victims_thin_old_stretches_more_and_keep_samples_across_the_life() {
        let day = 86_400_000;
        let now = 400 * day;
        // One event an hour for 400 days.
        let events: Vec<EventAge> = (0..9600).map(|h| event(h, h * 3_600_000, h == 0)).collect();
        let victims = choose_victims(&events, 9000, now);
        assert_eq!(victims.len(), 9000);
        let gone: std::collections::HashSet<i64> = victims.into_iter().collect();
        let left: Vec<&EventAge> = events.iter().filter(|e| !gone.contains(&e.id)).collect();
        let in_span = |from_days: i64, to_days: i64| {
            left.iter()
                .filter(|e| (now - e.received_at) >= from_days * day && (now - e.received_at) < to_days * day)
                .count()
        };
        // Samples survive from every stretch of the issue's life …
        for (from, to) in [(0, 50), (50, 100), (100, 200), (200, 300), (300, 400)] {
            assert!(in_span(from, to) > 0, "no sample {from}-{to} days old");
        }
        // … denser where it is recent.
        let recent_per_day = in_span(0, 25) as f64 / 25.0;
        let old_per_day = in_span(200, 400) as f64 / 200.0;
        assert!(recent_per_day > 2.0 * old_per_day, "{recent_per_day} vs {old_per_day}");
        // Within a stretch what stays is spread, not bunched: no gap in the
        // last 100 days longer than a few times the average.
        let times: Vec<i64> = left.iter().filter(|e| now - e.received_at < 100 * day).map(|e| e.received_at).collect();
        let widest = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        let average = 100 * day / times.len() as i64;
        assert!(widest <= 8 * average, "widest gap {widest} vs average {average}");
    }

    #[test]
    fn victims_of_a_burst_are_every_other_event_oldest_first() {
        let events: Vec<EventAge> = (0..9).map(|i| event(i, 1_000_000 + i, false)).collect();
        assert_eq!(choose_victims(&events, 4, 1_000_100), vec![1, 3, 5, 7]);
    }

    #[test]
    fn lightening_keeps_the_exception_and_tags_and_drops_locals_request_and_breadcrumbs() {
        let payload = serde_json::json!({
            "event_id": "a", "exception_type": "ValueError", "tags": {"k": "v"},
            "exceptions": [{"type": "ValueError", "value": "bad", "stacktrace": [
                {"filename": "app.py", "function": "f", "lineno": 3, "vars": {"password": "x"}, "in_app": true}
            ]}],
            "stacktrace": [{"filename": "b.py", "function": "g", "lineno": 1, "vars": {"y": "1"}, "in_app": true}],
            "request": {"url": "https://example.com", "data": {"card": "4111"}},
            "breadcrumbs": [{"message": "clicked"}],
            "extra": {"kept": true}
        })
        .to_string();
        let light: Value = serde_json::from_str(&lighten_payload(&payload)).unwrap();
        assert_eq!(light["exceptions"][0]["stacktrace"][0]["function"], "f");
        assert_eq!(light["exceptions"][0]["stacktrace"][0]["lineno"], 3);
        assert!(light["exceptions"][0]["stacktrace"][0].get("vars").is_none());
        assert!(light["stacktrace"][0].get("vars").is_none());
        assert_eq!(light["tags"]["k"], "v");
        assert_eq!(light["extra"]["kept"], true);
        assert!(light.get("request").is_none() && light.get("breadcrumbs").is_none());
        assert_eq!(lighten_payload("not json"), "not json");
    }
}
