//! Retention's rules against each backend (`store_tests!` from
//! `store_conformance`): eviction keeps first, regression and latest events
//! and never changes counts; age limits remove old events and stale empty
//! issues; the lighter tier rewrites old payloads once; the disk budget
//! evicts across projects; two passes at once count each eviction once;
//! one node at a time holds the lease.

use crate::support::*;
use booboo_server::retention::{run_once, RetentionSettings};
use booboo_server::store::{IssueStatus, Page, Store, StoreOutcome};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const DAY: i64 = 86_400_000;

store_tests!(
    eviction_keeps_first_regression_and_latest_events_and_never_changes_counts,
    age_limits_delete_old_events_and_remove_stale_empty_issues,
    the_lighter_tier_drops_locals_request_and_breadcrumbs_once,
    two_passes_at_once_count_each_eviction_once,
    one_node_at_a_time_holds_the_retention_lease,
);

// The disk budget counts the whole database: on PostgreSQL this test has
// one of its own, which tests running beside it cannot grow.
mod disk_budget {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let (store, _dir) = crate::support::sqlite_store().await;
        super::the_disk_budget_evicts_from_the_biggest_project_until_under(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(db) = crate::support::postgres::TestDatabase::create_alone().await else {
            eprintln!("skipped: BOOBOO_TEST_DATABASE_URL is not set");
            return;
        };
        super::the_disk_budget_evicts_from_the_biggest_project_until_under(db.store.clone()).await;
        db.drop().await;
    }
}

fn settings(max_events: i64) -> RetentionSettings {
    RetentionSettings {
        default_max_events: max_events,
        default_retention_days: 36_500,
        max_disk_bytes: None,
        full_payload_days: None,
        interval: Duration::from_secs(60),
    }
}

async fn project(store: &Arc<dyn Store>, slug: &str) -> i64 {
    store.create_project("acme", slug, &format!("{:032x}", rand_u128()), T0).await.unwrap().0.id
}

async fn store_one(store: &Arc<dyn Store>, project: i64, at: i64, function: &str) -> (i64, String) {
    let event = new_event(project, at, &body(function, json!({})));
    let id = event.processed.event.event_id.clone();
    let StoreOutcome::Stored { issue_id } = store.store_events(&[event]).await.unwrap()[0] else { panic!() };
    (issue_id, id)
}

async fn stored_ids(store: &Arc<dyn Store>, issue_id: i64) -> Vec<String> {
    let page = store.issue_events(ADMIN, issue_id, Page { offset: 0, limit: 1000 }).await.unwrap().unwrap();
    page.items.into_iter().map(|e| e.event_id).collect()
}

async fn eviction_keeps_first_regression_and_latest_events_and_never_changes_counts(store: Arc<dyn Store>) {
    let p = project(&store, "web").await;
    let (pay, first) = store_one(&store, p, T0, "pay").await;
    for i in 1..50 {
        store_one(&store, p, T0 + i * 60_000, "pay").await;
    }
    store.set_issue_status(ADMIN, pay, IssueStatus::Resolved).await.unwrap();
    let (_, regression) = store_one(&store, p, T0 + 50 * 60_000, "pay").await;
    let mut latest = String::new();
    for i in 51..71 {
        latest = store_one(&store, p, T0 + i * 60_000, "pay").await.1;
    }
    let (ship, _) = store_one(&store, p, T0, "ship").await;
    for i in 1..3 {
        store_one(&store, p, T0 + i, "ship").await;
    }
    let before = store.issue_detail(ADMIN, pay).await.unwrap().unwrap().issue;
    assert_eq!((before.count, before.stored), (71, 71));

    let report = run_once(&*store, &settings(10), T0 + DAY, None).await.unwrap();
    assert_eq!(report.over_count, 64);
    // The crash loop gave up events; the small issue kept all three.
    let kept = stored_ids(&store, pay).await;
    assert_eq!(kept.len(), 7);
    for must in [&first, &regression, &latest] {
        assert!(kept.contains(must), "{must} was evicted");
    }
    assert_eq!(stored_ids(&store, ship).await.len(), 3);
    let after = store.issue_detail(ADMIN, pay).await.unwrap().unwrap().issue;
    assert_eq!((after.count, after.stored, after.not_stored.retention), (71, 7, 64));
    assert_eq!((after.users, after.first_seen, after.last_seen), (before.users, before.first_seen, before.last_seen));
    assert_eq!(after.first_release, before.first_release);
    let hourly: i64 = store.issue_hourly(ADMIN, p, &[pay], 0).await.unwrap().iter().map(|h| h.count).sum();
    assert_eq!(hourly, 71);
    // What stays is spread over the issue's life, not only its newest.
    let times: Vec<i64> = store
        .issue_events(ADMIN, pay, Page { offset: 0, limit: 100 })
        .await
        .unwrap()
        .unwrap()
        .items
        .iter()
        .map(|e| e.received_at)
        .collect();
    assert!(times.iter().any(|t| (T0 + 60_000..T0 + 50 * 60_000).contains(t)), "{times:?}");
    // Within the limit now: a second pass does nothing.
    assert_eq!(run_once(&*store, &settings(10), T0 + DAY, None).await.unwrap().over_count, 0);
}

async fn age_limits_delete_old_events_and_remove_stale_empty_issues(store: Arc<dyn Store>) {
    let p = project(&store, "web").await;
    let (old, _) = store_one(&store, p, T0, "old").await;
    store_one(&store, p, T0 + 1, "old").await;
    let (live, _) = store_one(&store, p, T0, "live").await;
    let (_, recent) = store_one(&store, p, T0 + 10 * DAY, "live").await;
    let settings = RetentionSettings { default_retention_days: 5, ..settings(1000) };

    let report = run_once(&*store, &settings, T0 + 12 * DAY, None).await.unwrap();
    assert_eq!((report.over_age, report.issues_removed), (3, 1));
    assert!(store.issue_detail(ADMIN, old).await.unwrap().is_none(), "the stale empty issue is gone");
    let live_issue = store.issue_detail(ADMIN, live).await.unwrap().unwrap().issue;
    assert_eq!((live_issue.count, live_issue.stored, live_issue.not_stored.retention), (2, 1, 1));
    assert_eq!(stored_ids(&store, live).await, vec![recent]);
    // Days later the recent event ages out too, and with it the issue.
    let report = run_once(&*store, &settings, T0 + 16 * DAY, None).await.unwrap();
    assert_eq!((report.over_age, report.issues_removed), (1, 1));
    assert!(store.issue_detail(ADMIN, live).await.unwrap().is_none());
}

async fn the_lighter_tier_drops_locals_request_and_breadcrumbs_once(store: Arc<dyn Store>) {
    let p = project(&store, "web").await;
    let full = json!({
        "stacktrace": [{"filename": "/srv/app/views.py", "function": "pay", "lineno": 10, "in_app": true,
                        "context_line": "pay()", "pre_context": [], "post_context": [], "vars": {"amount": "12"}}],
        "request": {"method": "POST", "url": "https://shop.example/pay", "data": {"card": "x"}},
        "breadcrumbs": [{"message": "clicked pay"}],
        "tags": {"region": "eu"}
    });
    let old = new_event(p, T0, &body("pay", full.clone()));
    let young = new_event(p, T0 + 10 * DAY, &body("pay", full));
    let (old_id, young_id) = (old.processed.event.event_id.clone(), young.processed.event.event_id.clone());
    store.store_events(&[old, young]).await.unwrap();
    let settings = RetentionSettings { full_payload_days: Some(5), ..settings(1000) };

    let report = run_once(&*store, &settings, T0 + 12 * DAY, None).await.unwrap();
    assert_eq!(report.lightened, 1);
    let light = store.event(ADMIN, &old_id).await.unwrap().unwrap();
    let event: booboo_core::Event = serde_json::from_str(&light.payload).expect("a lightened payload still reads");
    assert_eq!(event.exceptions[0].stacktrace[0].function, "pay");
    assert_eq!(event.exceptions[0].stacktrace[0].lineno, Some(10));
    assert!(event.exceptions[0].stacktrace[0].vars.is_empty());
    assert!(event.request.is_none() && event.breadcrumbs.is_empty());
    assert_eq!(event.tags.get("region").map(String::as_str), Some("eu"));
    let untouched: booboo_core::Event =
        serde_json::from_str(&store.event(ADMIN, &young_id).await.unwrap().unwrap().payload).unwrap();
    assert!(untouched.request.is_some() && !untouched.breadcrumbs.is_empty());
    assert!(!untouched.exceptions[0].stacktrace[0].vars.is_empty());
    assert_eq!(run_once(&*store, &settings, T0 + 12 * DAY, None).await.unwrap().lightened, 0, "done once");
}

async fn the_disk_budget_evicts_from_the_biggest_project_until_under(store: Arc<dyn Store>) {
    let big = project(&store, "big").await;
    let small = project(&store, "small").await;
    // Payloads that neither backend compresses much: pseudo-random hex.
    let filler = |i: i64| (0..60).map(|j| format!("{:032x}", rand_u128() ^ (i * 1000 + j) as u128)).collect::<String>();
    for chunk in 0..6 {
        let batch: Vec<_> = (0..50)
            .map(|i| {
                let n = chunk * 50 + i;
                new_event(big, T0 + n * 1000, &body("pay", json!({"extra": {"blob": filler(n)}})))
            })
            .collect();
        store.store_events(&batch).await.unwrap();
    }
    for i in 0..10 {
        store_one(&store, small, T0 + i, "ship").await;
    }
    let used = store.used_bytes().await.unwrap();
    let budget = used - 100 * 1900;
    let settings = RetentionSettings { max_disk_bytes: Some(budget), ..settings(1_000_000) };

    let report = run_once(&*store, &settings, T0 + DAY, None).await.unwrap();
    assert!(report.over_disk > 0);
    let after = store.used_bytes().await.unwrap();
    assert!(after <= budget, "{after} bytes used, budget {budget}");
    let stored: std::collections::HashMap<i64, i64> = store.stored_per_project().await.unwrap().into_iter().collect();
    assert_eq!(stored[&small], 10, "the small project kept everything");
    assert_eq!(stored[&big], 300 - report.over_disk as i64);
}

async fn two_passes_at_once_count_each_eviction_once(store: Arc<dyn Store>) {
    let p = project(&store, "web").await;
    for chunk in 0..4 {
        let batch: Vec<_> =
            (0..100).map(|i| new_event(p, T0 + (chunk * 100 + i) * 1000, &body("pay", json!({})))).collect();
        store.store_events(&batch).await.unwrap();
    }
    let settings = settings(50);
    let (a, b) =
        tokio::join!(run_once(&*store, &settings, T0 + DAY, None), run_once(&*store, &settings, T0 + DAY, None));
    let evicted = a.unwrap().over_count + b.unwrap().over_count;
    let stored: i64 = store.stored_per_project().await.unwrap().iter().map(|(_, n)| n).sum();
    let issue =
        store.list_issues(ADMIN, p, &Default::default(), Page { offset: 0, limit: 10 }).await.unwrap().items.remove(0);
    assert_eq!(issue.count, 400);
    assert_eq!(issue.not_stored.retention as u64, evicted);
    assert_eq!(issue.stored, stored);
    // Planned from the same counts, the passes may both evict; each event
    // is still counted once.
    assert!(stored <= 50 + 2, "{stored} stored");
}

async fn one_node_at_a_time_holds_the_retention_lease(store: Arc<dyn Store>) {
    assert!(store.take_retention_lease("a", T0, T0 + 30_000).await.unwrap());
    assert!(!store.take_retention_lease("b", T0 + 1000, T0 + 31_000).await.unwrap());
    assert!(store.take_retention_lease("a", T0 + 20_000, T0 + 50_000).await.unwrap(), "the holder renews");
    assert!(!store.take_retention_lease("b", T0 + 40_000, T0 + 70_000).await.unwrap());
    assert!(store.take_retention_lease("b", T0 + 50_000, T0 + 80_000).await.unwrap(), "taken over once expired");
    assert!(!store.take_retention_lease("a", T0 + 60_000, T0 + 90_000).await.unwrap());
}
