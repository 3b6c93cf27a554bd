//! Merging issues, per backend: what the merged issue adds up to, where later
//! events of either fingerprint go, and merges racing ingest.

use crate::support::*;
use booboo_server::store::{
    IssueFilter, IssueMerge, IssueStatus, Page, Role, Store, StoreError, StoreOutcome, Viewer, MAX_MERGE_SOURCES,
};
use serde_json::json;
use std::sync::Arc;

store_tests!(
    a_merge_adds_up_counts_users_history_and_later_events_land_in_the_kept_issue,
    merge_survives_new_events,
    merges_are_checked_and_stay_within_one_project_and_access,
    a_merge_racing_ingest_loses_and_doubles_no_event,
);

const HOUR: i64 = 3_600_000;

async fn stored(store: &Arc<dyn Store>, event: serde_json::Value, project: i64, at: i64) -> i64 {
    match store.store_events(&[new_event(project, at, &event)]).await.unwrap()[0] {
        StoreOutcome::Stored { issue_id } => issue_id,
        StoreOutcome::Duplicate => panic!("not stored"),
    }
}

fn merge(target: i64, sources: &[i64]) -> IssueMerge {
    IssueMerge::new(target, sources).unwrap()
}

async fn event_count_of(store: &Arc<dyn Store>, issue_id: i64) -> usize {
    let page = store.issue_events(ADMIN, issue_id, Page { offset: 0, limit: 10_000 }).await.unwrap().unwrap();
    page.items.len()
}

async fn a_merge_adds_up_counts_users_history_and_later_events_land_in_the_kept_issue(store: Arc<dyn Store>) {
    let (project, _) = store.create_project("acme", "web", &format!("{:032x}", rand_u128()), T0).await.unwrap();
    let p = project.id;
    let user = |id: &str| json!({"user": {"id": id}});
    let pay = stored(&store, body("pay", json!({"context": user("u1"), "release": "1.1"})), p, T0 + HOUR).await;
    stored(&store, body("pay", json!({"context": user("u2"), "tags": {"browser": "firefox"}})), p, T0 + 2 * HOUR).await;
    let ship =
        stored(&store, body("ship", json!({"context": user("u2"), "release": "0.9", "environment": "staging"})), p, T0)
            .await;
    stored(&store, body("ship", json!({"context": user("u3"), "tags": {"browser": "firefox"}})), p, T0 + 5 * HOUR)
        .await;
    assert_ne!(pay, ship);

    assert!(store.merge_issues(ADMIN, &merge(pay, &[ship]), T0 + 6 * HOUR).await.unwrap());

    let detail = store.issue_detail(ADMIN, pay).await.unwrap().unwrap();
    let issue = &detail.issue;
    assert_eq!((issue.count, issue.users), (4, 3), "u2 is counted once");
    assert_eq!((issue.first_seen, issue.last_seen), (T0, T0 + 5 * HOUR));
    assert_eq!(issue.first_release.as_deref(), Some("0.9"), "the release of the earliest event");
    let counts = |v: &[booboo_server::store::ValueCount]| {
        let mut v: Vec<_> = v.iter().map(|c| (c.value.clone(), c.count)).collect();
        v.sort();
        v
    };
    assert_eq!(counts(&detail.environment_counts), vec![("production".into(), 3), ("staging".into(), 1)]);
    assert_eq!(counts(&detail.release_counts), vec![("0.9".into(), 1), ("1.0".into(), 2), ("1.1".into(), 1)]);
    let browser = detail.tags.iter().find(|t| t.key == "browser").unwrap();
    assert_eq!(counts(&browser.values), vec![("firefox".into(), 2)]);
    let hourly = store.issue_hourly(ADMIN, p, &[pay], T0 / HOUR).await.unwrap();
    let mut hours: Vec<_> = hourly.iter().map(|h| (h.hour - T0 / HOUR, h.count)).collect();
    hours.sort();
    assert_eq!(hours, vec![(0, 1), (1, 1), (2, 1), (5, 1)]);
    assert_eq!(event_count_of(&store, pay).await, 4, "the merged issue's events moved");

    // The merged issue is gone; links to it lead to the kept one.
    assert!(store.issue_detail(ADMIN, ship).await.unwrap().is_none());
    assert_eq!(store.merged_issue_target(ADMIN, ship).await.unwrap(), Some(pay));
    let all = store.list_issues(ADMIN, p, &IssueFilter::default(), Page { offset: 0, limit: 10 }).await.unwrap();
    assert_eq!(all.items.iter().map(|i| i.id).collect::<Vec<_>>(), vec![pay]);

    // A merge into a third issue takes the earlier merge's fingerprint along.
    let load = stored(&store, body("load", json!({})), p, T0 + 7 * HOUR).await;
    assert!(store.merge_issues(ADMIN, &merge(load, &[pay]), T0 + 8 * HOUR).await.unwrap());
    assert_eq!(stored(&store, body("ship", json!({})), p, T0 + 9 * HOUR).await, load);
    assert_eq!(stored(&store, body("pay", json!({})), p, T0 + 9 * HOUR).await, load);
    assert_eq!(store.merged_issue_target(ADMIN, ship).await.unwrap(), Some(load));
    assert_eq!(store.issue_detail(ADMIN, load).await.unwrap().unwrap().issue.count, 7);

    // Deleting the kept issue frees the fingerprints: they start anew.
    assert!(store.delete_issue(ADMIN, load).await.unwrap());
    let fresh = stored(&store, body("ship", json!({})), p, T0 + 10 * HOUR).await;
    assert_eq!(store.issue_detail(ADMIN, fresh).await.unwrap().unwrap().issue.count, 1);
    assert_eq!(store.merged_issue_target(ADMIN, ship).await.unwrap(), None);
}

/// The issue's test line: new events of the old fingerprints after the merge
/// land in the target, however many and in whatever state it is.
async fn merge_survives_new_events(store: Arc<dyn Store>) {
    let (project, _) = store.create_project("acme", "web", &format!("{:032x}", rand_u128()), T0).await.unwrap();
    let p = project.id;
    let a = stored(&store, body("a", json!({})), p, T0).await;
    let b = stored(&store, body("b", json!({})), p, T0).await;
    let c = stored(&store, body("c", json!({})), p, T0).await;
    store.set_issue_status(ADMIN, a, IssueStatus::Resolved).await.unwrap();
    assert!(store.merge_issues(ADMIN, &merge(a, &[b, c]), T0 + 1).await.unwrap());

    let batch: Vec<_> =
        (0..30).map(|i| new_event(p, T0 + 10 + i, &body(["a", "b", "c"][i as usize % 3], json!({})))).collect();
    let outcomes = store.store_events(&batch).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == StoreOutcome::Stored { issue_id: a }), "{outcomes:?}");
    let issue = store.issue_detail(ADMIN, a).await.unwrap().unwrap().issue;
    assert_eq!(issue.count, 33);
    assert_eq!(issue.status, IssueStatus::Unresolved, "a later event of a merged fingerprint reopens it");
    assert!(issue.is_regression);
    assert_eq!(event_count_of(&store, a).await, 33);
    let all = store.list_issues(ADMIN, p, &IssueFilter::default(), Page { offset: 0, limit: 10 }).await.unwrap();
    assert_eq!(all.items.len(), 1);
}

async fn merges_are_checked_and_stay_within_one_project_and_access(store: Arc<dyn Store>) {
    assert!(IssueMerge::new(1, &[]).is_err());
    assert!(IssueMerge::new(1, &[1, 2]).is_err());
    let too_many: Vec<i64> = (2..(MAX_MERGE_SOURCES as i64 + 3)).collect();
    assert!(IssueMerge::new(1, &too_many).is_err());
    assert_eq!(IssueMerge::new(1, &[3, 2, 3]).unwrap().sources(), &[2, 3]);

    let member = store.create_user("member@example.com", "unused", false, T0).await.unwrap();
    let (web, _) = store.create_project("acme", "web", &format!("{:032x}", rand_u128()), T0).await.unwrap();
    let (api, _) = store.create_project("acme", "api", &format!("{:032x}", rand_u128()), T0).await.unwrap();
    let (theirs, _) = store.create_project("other", "web", &format!("{:032x}", rand_u128()), T0).await.unwrap();
    store.set_membership("acme", member.id, Role::Member).await.unwrap();
    let a = stored(&store, body("a", json!({})), web.id, T0).await;
    let b = stored(&store, body("b", json!({})), web.id, T0).await;
    let elsewhere = stored(&store, body("b", json!({})), api.id, T0).await;
    let hidden = stored(&store, body("b", json!({})), theirs.id, T0).await;
    let viewer = member.viewer();

    assert!(matches!(store.merge_issues(viewer, &merge(a, &[elsewhere]), T0).await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.merge_issues(viewer, &merge(a, &[hidden]), T0).await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.merge_issues(viewer, &merge(a, &[b, 999_999]), T0).await, Err(StoreError::NotFound(_))));
    assert!(!store.merge_issues(viewer, &merge(hidden, &[a]), T0).await.unwrap(), "an invisible target is not found");
    let stranger = Viewer { user_id: member.id + 1000, is_admin: false };
    assert!(!store.merge_issues(stranger, &merge(a, &[b]), T0).await.unwrap());
    assert_eq!(store.merged_issue_target(stranger, b).await.unwrap(), None);
    // Nothing of a refused merge was kept.
    for id in [a, b, elsewhere, hidden] {
        assert_eq!(store.issue_detail(ADMIN, id).await.unwrap().unwrap().issue.count, 1);
    }
    // A member of the organisation may merge.
    assert!(store.merge_issues(viewer, &merge(a, &[b]), T0).await.unwrap());
    assert_eq!(store.merged_issue_target(viewer, b).await.unwrap(), Some(a));
    assert_eq!(store.merged_issue_target(viewer, a).await.unwrap(), None);
}

/// Batches of both fingerprints keep arriving (from several writers at once
/// on PostgreSQL) while the merge runs: every event is counted once, in the
/// kept issue or (before the merge) in the merged one whose count moves.
async fn a_merge_racing_ingest_loses_and_doubles_no_event(store: Arc<dyn Store>) {
    let (project, _) = store.create_project("acme", "web", &format!("{:032x}", rand_u128()), T0).await.unwrap();
    let p = project.id;
    let a = stored(&store, body("a", json!({})), p, T0).await;
    let b = stored(&store, body("b", json!({})), p, T0).await;
    const WRITERS: i64 = 4;
    const BATCHES: i64 = 25;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..BATCHES {
                    let batch: Vec<_> = (0..4)
                        .map(|i| {
                            let at = T0 + w * 1000 + n * 10 + i;
                            new_event(p, at, &body(if (w + i) % 2 == 0 { "a" } else { "b" }, json!({})))
                        })
                        .collect();
                    loop {
                        match store.store_events(&batch).await {
                            Ok(_) => break,
                            // SQLite has one writer; busy is retried.
                            Err(StoreError::Unavailable(_)) => {
                                tokio::time::sleep(std::time::Duration::from_millis(2)).await
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    loop {
        match store.merge_issues(ADMIN, &merge(a, &[b]), T0).await {
            Ok(merged) => {
                assert!(merged);
                break;
            }
            Err(StoreError::Unavailable(_)) => tokio::time::sleep(std::time::Duration::from_millis(2)).await,
            Err(e) => panic!("{e}"),
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let total = 2 + WRITERS * BATCHES * 4;
    let all = store.list_issues(ADMIN, p, &IssueFilter::default(), Page { offset: 0, limit: 10 }).await.unwrap();
    assert_eq!(all.items.iter().map(|i| (i.id, i.count)).collect::<Vec<_>>(), vec![(a, total)]);
    assert_eq!(event_count_of(&store, a).await as i64, total);
}
