//! The writer sums a batch's counters in memory and writes each table once
//! per batch, and inserts the batch's event rows at its end: what it stores
//! must be exactly what storing the same events one at a time stores, on
//! every backend.

use crate::support::*;
use booboo_core::search_query;
use booboo_server::store::{
    IgnoreCondition, IssueFilter, IssueSearch, IssueStatus, KeyedBatch, NewEvent, NotStoredReason, Page, RateLimit,
    Resolution, Store, StoreOutcome, Trigger,
};
use serde_json::json;
use std::sync::Arc;

store_tests!(
    a_mixed_batch_stores_exactly_what_one_by_one_storage_would,
    duplicates_count_once_and_first_and_regression_events_are_kept,
    alert_counts_include_the_batchs_own_events,
    concurrent_batches_of_the_same_events_store_each_once,
    regressions_ignores_and_new_issues_in_one_batch_are_judged_as_one_by_one,
    an_ignore_until_users_ends_at_the_same_event_in_a_batch_as_one_by_one,
    a_batch_with_a_revoked_key_stores_nothing_and_names_the_key,
);

const HOUR: i64 = 3_600_000;

/// Stores `batch` in one batch, or one event at a time.
async fn store_as_one_batch_or_one_by_one(store: &Arc<dyn Store>, one_batch: bool, batch: Vec<NewEvent>) {
    if one_batch {
        store.store_events(&batch).await.unwrap();
    } else {
        for e in batch {
            store.store_events(&[e]).await.unwrap();
        }
    }
}

/// A fresh ingestion key.
fn token() -> String {
    format!("{:032x}", rand_u128())
}
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

async fn duplicates_count_once_and_first_and_regression_events_are_kept(store: Arc<dyn Store>) {
    let p = store.create_project("acme", "web", &format!("{:032x}", rand_u128()), T0).await.unwrap().0.id;
    crate::quota_store::set_quota(&store, p, Some(RateLimit { count: 2, seconds: 3600 }), false).await;
    let pay = |at: i64| new_event(p, at, &body("pay", json!({})));
    let (e1, e2, e3) = (pay(T0), pay(T0 + 1), pay(T0 + 2));

    // Sent twice in one batch, stored or over the quota: counted once.
    let outcomes = store.store_events(&[e1.clone(), e1.clone(), e2.clone(), e3.clone(), e3.clone()]).await.unwrap();
    let StoreOutcome::Stored { issue_id } = outcomes[0] else { panic!("{outcomes:?}") };
    assert_eq!(
        outcomes[1..],
        [
            StoreOutcome::Duplicate,
            StoreOutcome::Stored { issue_id },
            StoreOutcome::NotStored { issue_id, reason: NotStoredReason::RateLimit },
            StoreOutcome::Duplicate,
        ]
    );
    // Sent again in a later batch: duplicates, even over the quota.
    assert_eq!(store.store_events(&[e2, e1]).await.unwrap(), [StoreOutcome::Duplicate, StoreOutcome::Duplicate]);
    let issue = store.issue_detail(ADMIN, issue_id).await.unwrap().unwrap().issue;
    assert_eq!((issue.count, issue.stored, issue.not_stored.rate_limit), (3, 2, 1));

    // The next hour's batch regresses the resolved issue with its first event.
    store.set_issue_status(ADMIN, issue_id, IssueStatus::Resolved).await.unwrap();
    let outcomes = store.store_events(&[pay(T0 + HOUR), pay(T0 + HOUR + 1)]).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == StoreOutcome::Stored { issue_id }), "{outcomes:?}");
    let issue = store.issue_detail(ADMIN, issue_id).await.unwrap().unwrap().issue;
    assert_eq!((issue.status, issue.is_regression, issue.count, issue.stored), (IssueStatus::Unresolved, true, 5, 4));
    // Kept by retention: the issue's first event and the regression's.
    let kept: Vec<(i64, bool)> =
        store.issue_event_ages(issue_id).await.unwrap().iter().map(|e| (e.received_at - T0, e.kept)).collect();
    assert_eq!(kept, [(0, true), (1, false), (HOUR, true), (HOUR + 1, false)]);
}

/// Frequency and users rules count the events stored before the batch and
/// the batch's own, whose rows are inserted at its end: one batch, two
/// batches and one event at a time fire the same alerts.
async fn alert_counts_include_the_batchs_own_events(store: Arc<dyn Store>) {
    let mut fired = Vec::new();
    for (slug, split) in [("one-batch", vec![5]), ("two-batches", vec![2, 3]), ("one-by-one", vec![1; 5])] {
        let p = store.create_project("acme", slug, &format!("{:032x}", rand_u128()), T0).await.unwrap().0.id;
        for trigger in
            [Trigger::Frequency { count: 3, window_ms: 60_000 }, Trigger::Users { count: 3, window_ms: 60_000 }]
        {
            store.create_alert_rule(p, &super::alert_rule(trigger, 1), T0).await.unwrap();
        }
        let mut events = ["u1", "u2", "u2", "u3", "u3"]
            .iter()
            .enumerate()
            .map(|(i, user)| new_event(p, T0 + i as i64, &body("pay", json!({"context": {"user": {"id": user}}}))));
        for n in split {
            let batch: Vec<NewEvent> = events.by_ref().take(n).collect();
            store.store_events(&batch).await.unwrap();
        }
        let mut kinds: Vec<String> =
            store.project_deliveries(p, 50).await.unwrap().into_iter().map(|d| d.kind.to_string()).collect();
        kinds.sort();
        fired.push((slug, kinds));
    }
    for (slug, kinds) in &fired {
        assert_eq!(kinds, &["issue.frequency", "issue.users"], "{slug}");
    }
}

/// Batches that share events, stored at once (on PostgreSQL, in parallel
/// transactions that each find the events new, then race to insert them):
/// each event is stored and counted once.
async fn concurrent_batches_of_the_same_events_store_each_once(store: Arc<dyn Store>) {
    let p = store.create_project("acme", "web", &format!("{:032x}", rand_u128()), T0).await.unwrap().0.id;
    let events: Vec<NewEvent> =
        (0..12).map(|i| new_event(p, T0 + i, &body(&format!("f{}", i % 3), json!({})))).collect();
    let tasks: Vec<_> = (0..4)
        .map(|k| {
            let (store, batch) = (store.clone(), events[k * 2..k * 2 + 6].to_vec());
            tokio::spawn(async move { super::store_retrying_while_busy(&store, &batch).await })
        })
        .collect();
    let mut stored = 0;
    for task in tasks {
        stored += task.await.unwrap().iter().filter(|o| matches!(o, StoreOutcome::Stored { .. })).count();
    }
    assert_eq!(stored, 12);
    let all = IssueFilter { status: None, ..IssueFilter::default() };
    let issues = store.list_issues(ADMIN, p, &all, ALL).await.unwrap().items;
    assert_eq!(issues.iter().map(|i| (i.count, i.stored)).collect::<Vec<_>>(), [(4, 4); 3]);
}

/// Events of one issue share one upsert in a batch only while nothing can
/// happen between them; an issue that is resolved (plainly or in a release)
/// or ignored until a count is judged event by event. One batch and one
/// event at a time reach the same issues, alerts and kept marks.
async fn regressions_ignores_and_new_issues_in_one_batch_are_judged_as_one_by_one(store: Arc<dyn Store>) {
    let mut seen = Vec::new();
    for slug in ["one-batch", "one-by-one"] {
        let p = store.create_project("acme", slug, &format!("{:032x}", rand_u128()), T0).await.unwrap().0.id;
        for trigger in [Trigger::NewIssue, Trigger::Regression, Trigger::Unignored] {
            store.create_alert_rule(p, &super::alert_rule(trigger, 1), T0).await.unwrap();
        }
        let event = |t: i64, function: &str, release: &str| {
            new_event(p, T0 + t, &body(function, json!({"release": release, "context": {"user": {"id": "u1"}}})))
        };
        let mut issue = std::collections::BTreeMap::new();
        for function in ["open", "resolved", "in-release", "ignored"] {
            let outcome = store.store_events(&[event(0, function, "1.0")]).await.unwrap();
            issue.insert(function, outcome[0].issue_id().unwrap());
        }
        store.set_issue_status(ADMIN, issue["resolved"], IssueStatus::Resolved).await.unwrap();
        store.resolve_issue(ADMIN, issue["in-release"], &Resolution::InRelease("2.0".into())).await.unwrap();
        store.ignore_issue(ADMIN, issue["ignored"], IgnoreCondition::Events(2), T0).await.unwrap().unwrap();
        let batch: Vec<NewEvent> = [
            ("open", "1.0"),
            ("resolved", "1.0"),
            ("in-release", "1.0"),
            ("ignored", "1.0"),
            ("new", ""),
            ("open", "1.1"),
            ("resolved", "1.0"),
            ("in-release", "2.0"),
            ("ignored", "1.0"),
            ("new", "1.2"),
            ("in-release", "2.1"),
            ("ignored", "1.0"),
            ("new", "1.3"),
        ]
        .iter()
        .enumerate()
        .map(|(i, (function, release))| event(10 + i as i64, function, release))
        .collect();
        store_as_one_batch_or_one_by_one(&store, slug == "one-batch", batch).await;
        let all = IssueFilter { status: None, ..IssueFilter::default() };
        let mut issues = store.list_issues(ADMIN, p, &all, ALL).await.unwrap().items;
        issues.sort_by(|a, b| a.culprit.cmp(&b.culprit));
        let mut rows = Vec::new();
        for i in &issues {
            let kept: Vec<(i64, bool)> =
                store.issue_event_ages(i.id).await.unwrap().iter().map(|e| (e.received_at - T0, e.kept)).collect();
            let mut alerts: Vec<String> =
                store.issue_deliveries(i.id, 50).await.unwrap().into_iter().map(|d| d.kind.to_string()).collect();
            alerts.sort();
            rows.push(format!(
                "{} {:?} regression={} count={} first={} last={} first_release={:?} kept={kept:?} alerts={alerts:?}",
                i.culprit, i.status, i.is_regression, i.count, i.first_seen, i.last_seen, i.first_release
            ));
        }
        seen.push(rows);
    }
    assert!(seen[0].iter().any(|row| row.contains("regression=true")), "{:#?}", seen[0]);
    assert_eq!(seen[0], seen[1], "one batch (left) and one by one (right) differ");
}

/// Users are counted once per batch, except on an issue ignored until a
/// number of users, which counts them event by event: the ignore ends at
/// the same event, with the same users counted, as one event at a time.
async fn an_ignore_until_users_ends_at_the_same_event_in_a_batch_as_one_by_one(store: Arc<dyn Store>) {
    let mut seen = Vec::new();
    for slug in ["users-batch", "users-one-by-one"] {
        let p = store.create_project("acme", slug, &token(), T0).await.unwrap().0.id;
        store.create_alert_rule(p, &super::alert_rule(Trigger::Unignored, 1), T0).await.unwrap();
        let event = |t: i64, function: &str, user: &str| {
            new_event(p, T0 + t, &body(function, json!({"context": {"user": {"id": user}}})))
        };
        let ignored = store.store_events(&[event(0, "ignored", "u0")]).await.unwrap()[0].issue_id().unwrap();
        store.store_events(&[event(1, "open", "u0")]).await.unwrap();
        store.ignore_issue(ADMIN, ignored, IgnoreCondition::Users(2), T0).await.unwrap().unwrap();
        // u0 again and u1 are not yet two more users; u2 is the second.
        let batch: Vec<NewEvent> = [
            ("ignored", "u0"),
            ("open", "u1"),
            ("ignored", "u1"),
            ("open", "u1"),
            ("ignored", "u1"),
            ("open", "u2"),
            ("ignored", "u2"),
            ("ignored", "u3"),
        ]
        .iter()
        .enumerate()
        .map(|(i, (function, user))| event(10 + i as i64, function, user))
        .collect();
        store_as_one_batch_or_one_by_one(&store, slug == "users-batch", batch).await;
        let all = IssueFilter { status: None, ..IssueFilter::default() };
        let mut issues = store.list_issues(ADMIN, p, &all, ALL).await.unwrap().items;
        issues.sort_by(|a, b| a.culprit.cmp(&b.culprit));
        let mut rows = Vec::new();
        for i in &issues {
            let alerts: Vec<String> =
                store.issue_deliveries(i.id, 50).await.unwrap().into_iter().map(|d| d.kind.to_string()).collect();
            rows.push(format!("{} {:?} count={} users={} alerts={alerts:?}", i.culprit, i.status, i.count, i.users));
        }
        seen.push(rows);
    }
    assert!(seen[0].iter().any(|row| row.contains("users=4") && row.contains("Unresolved")), "{:#?}", seen[0]);
    assert!(seen[0].iter().any(|row| row.contains("users=3")), "{:#?}", seen[0]);
    assert_eq!(seen[0], seen[1], "one batch (left) and one by one (right) differ");
}

/// The batch's keys are checked inside its transaction: with one revoked,
/// nothing of the batch is stored and the store names that key; with the
/// live key alone, the same events are stored.
async fn a_batch_with_a_revoked_key_stores_nothing_and_names_the_key(store: Arc<dyn Store>) {
    let live = token();
    let p = store.create_project("acme", "keyed", &live, T0).await.unwrap().0.id;
    let revoked = token();
    let key = store.add_project_key(ADMIN, p, &revoked, "old", T0).await.unwrap().unwrap();
    assert!(store.revoke_project_key(ADMIN, p, key.id, T0).await.unwrap());
    let batch: Vec<NewEvent> = (0..3).map(|i| new_event(p, T0 + i, &body("keyed", json!({})))).collect();
    let both = [live.as_str(), revoked.as_str()];
    match store.store_keyed_events(&batch, &both).await.unwrap() {
        KeyedBatch::KeysRevoked(keys) => assert_eq!(keys, std::slice::from_ref(&revoked)),
        other => panic!("a revoked key stored the batch: {other:?}"),
    }
    let all = IssueFilter { status: None, ..IssueFilter::default() };
    assert!(store.list_issues(ADMIN, p, &all, ALL).await.unwrap().items.is_empty(), "nothing stored");
    match store.store_keyed_events(&batch, &[live.as_str()]).await.unwrap() {
        KeyedBatch::Stored(outcomes) => assert_eq!(outcomes.len(), 3),
        other => panic!("a live key was refused: {other:?}"),
    }
    assert_eq!(store.list_issues(ADMIN, p, &all, ALL).await.unwrap().items[0].count, 3);
}
