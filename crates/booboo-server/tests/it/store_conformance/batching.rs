//! The writer sums a batch's counters in memory and writes each table once
//! per batch: what it stores must be exactly what storing the same events
//! one at a time stores, on every backend.

use crate::support::*;
use booboo_core::search_query;
use booboo_server::store::{IssueFilter, IssueSearch, NewEvent, Page, Store, StoreOutcome};
use serde_json::json;
use std::sync::Arc;

store_tests!(a_mixed_batch_stores_exactly_what_one_by_one_storage_would);

const HOUR: i64 = 3_600_000;
const ALL: Page = Page { offset: 0, limit: 100 };

/// 150 events over 7 fingerprints, 3 environments (one empty), 3 releases,
/// 2 tag keys, 9 users (and events without one), over 5 hours, out of
/// time order, with one event sent twice.
fn mixed_events(project_id: i64) -> Vec<NewEvent> {
    let mut events: Vec<NewEvent> = (0..150i64)
        .map(|i| {
            let environment = ["production", "staging", ""][(i % 3) as usize];
            let release = ["1.0", "1.1", "2.0"][(i % 5 % 3) as usize];
            let region = ["eu", "us"][(i % 2) as usize];
            let mut overrides = json!({
                "environment": environment,
                "release": release,
                "tags": {"region": region, "shard": format!("s{}", i % 4)},
            });
            if i % 4 != 0 {
                overrides["context"] = json!({"user": {"id": format!("u{}", i % 9)}});
            }
            let at = T0 + (i * 7919 % 150) * (5 * HOUR / 150);
            new_event(project_id, at, &body(&format!("f{}", i % 7), overrides))
        })
        .collect();
    let again = events[3].clone();
    events.push(again);
    events
}

/// Everything the pages read about a project's issues, keyed by culprit.
async fn read_back(store: &Arc<dyn Store>, p: i64) -> Vec<String> {
    let mut seen = Vec::new();
    for text in [
        "",
        "env:staging",
        "!env:production",
        "release:2.0",
        "region:eu",
        "user.id:u3",
        "f3",
        "release:1.1 region:us",
        "!release:1.0 shard:s2",
    ] {
        let search = IssueSearch { query: search_query::parse(text, T0 + 6 * HOUR).unwrap(), ..IssueSearch::default() };
        let results = store.search_issues(ADMIN, p, &search, ALL, T0 / HOUR).await.unwrap();
        seen.push(format!("{text:?} total={}", results.total));
        let culprit = |id: i64| results.hits.items.iter().find(|h| h.issue.id == id).unwrap().issue.culprit.clone();
        let mut rows: Vec<String> = results
            .hits
            .items
            .iter()
            .map(|h| format!("{text:?} {} count={} users={}", h.issue.culprit, h.count, h.users))
            .chain(
                results
                    .hourly
                    .iter()
                    .map(|c| format!("{text:?} {} hour+{}={}", culprit(c.issue_id), c.hour - T0 / HOUR, c.count)),
            )
            .collect();
        rows.sort();
        seen.extend(rows);
    }
    let all = IssueFilter { status: None, ..IssueFilter::default() };
    let mut issues = store.list_issues(ADMIN, p, &all, ALL).await.unwrap().items;
    issues.sort_by(|a, b| a.culprit.cmp(&b.culprit));
    let ids: Vec<i64> = issues.iter().map(|i| i.id).collect();
    for i in &issues {
        let detail = store.issue_detail(ADMIN, i.id).await.unwrap().unwrap();
        let events = store.issue_events(ADMIN, i.id, ALL).await.unwrap().unwrap().items.len();
        seen.push(format!(
            "{} count={} stored={} users={} first={} last={} first_release={:?} envs={:?} releases={:?} {:?} {:?} tags={:?} events={events}",
            i.culprit, i.count, i.stored, i.users, i.first_seen, i.last_seen, i.first_release, i.environments, i.releases,
            detail.environment_counts, detail.release_counts, detail.tags
        ));
    }
    let culprit = |id: i64| issues.iter().find(|i| i.id == id).unwrap().culprit.clone();
    let mut hours: Vec<String> = store
        .issue_hourly(ADMIN, p, &ids, T0 / HOUR)
        .await
        .unwrap()
        .iter()
        .map(|h| format!("{} hour+{}={}", culprit(h.issue_id), h.hour - T0 / HOUR, h.count))
        .collect();
    hours.sort();
    seen.extend(hours);
    seen.push(format!("{:?}", store.project_facets(ADMIN, p).await.unwrap()));
    seen
}

async fn a_mixed_batch_stores_exactly_what_one_by_one_storage_would(store: Arc<dyn Store>) {
    let token = || format!("{:032x}", rand_u128());
    let batched = store.create_project("acme", "batched", &token(), T0).await.unwrap().0.id;
    let single = store.create_project("acme", "single", &token(), T0).await.unwrap().0.id;

    let outcomes = store.store_events(&mixed_events(batched)).await.unwrap();
    assert_eq!(outcomes.iter().filter(|o| matches!(o, StoreOutcome::Stored { .. })).count(), 150, "{outcomes:?}");
    assert_eq!(outcomes.last(), Some(&StoreOutcome::Duplicate), "the event sent twice is stored once");
    for event in mixed_events(single) {
        store.store_events(&[event]).await.unwrap();
    }

    let (one_batch, one_by_one) = (read_back(&store, batched).await, read_back(&store, single).await);
    assert!(one_batch.iter().any(|row| row.contains("count=")), "nothing was read back");
    for (a, b) in one_batch.iter().zip(&one_by_one) {
        assert_eq!(a, b, "one batch (left) and one by one (right) differ");
    }
    assert_eq!(one_batch.len(), one_by_one.len());
}
