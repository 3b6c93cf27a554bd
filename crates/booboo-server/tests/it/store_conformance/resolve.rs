//! Resolving in a release and the regression rules, per backend: which
//! events reopen an issue resolved now, in the next release, in the current
//! release or in a named one, and that the regression alert fires exactly
//! when the issue regresses.

use super::{alert_rule, project};
use crate::support::*;
use booboo_server::store::{IssueStatus, Resolution, ResolvedInKind, Store, StoreError, StoreOutcome, Trigger};
use serde_json::json;
use std::sync::Arc;

store_tests!(
    resolved_in_the_next_release_regresses_only_from_a_later_release,
    resolved_in_a_named_release_regresses_from_it_on_even_before_it_is_seen,
    resolved_in_the_current_release_regresses_from_the_projects_latest_on,
    releases_that_are_not_versions_are_ordered_by_when_they_were_first_seen,
    a_release_resolution_lasts_until_the_status_changes,
);

/// Stores one event of the `pay` issue from `release` ("" for none) and
/// returns the issue's status and regression mark.
async fn event_from(store: &Arc<dyn Store>, p: i64, at: i64, release: &str) -> (i64, IssueStatus, bool) {
    let outcome =
        store.store_events(&[new_event(p, T0 + at, &body("pay", json!({"release": release})))]).await.unwrap();
    let StoreOutcome::Stored { issue_id } = outcome[0] else { panic!("not stored: {outcome:?}") };
    let issue = store.issue_detail(ADMIN, issue_id).await.unwrap().unwrap().issue;
    (issue_id, issue.status, issue.is_regression)
}

async fn regression_alerts(store: &Arc<dyn Store>, p: i64) -> usize {
    store.project_deliveries(p, 100).await.unwrap().iter().filter(|d| d.kind == "issue.regression").count()
}

async fn resolved_in_the_next_release_regresses_only_from_a_later_release(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    store.create_alert_rule(p, &alert_rule(Trigger::Regression, 1), T0).await.unwrap();
    event_from(&store, p, 0, "1.3.8").await;
    let (id, _, _) = event_from(&store, p, 1, "1.3.9").await;
    let issue = store.resolve_issue(ADMIN, id, &Resolution::NextRelease).await.unwrap().unwrap();
    assert_eq!(issue.status, IssueStatus::Resolved);
    let resolved_in = issue.resolved_in.unwrap();
    assert_eq!((resolved_in.kind, resolved_in.release.as_deref()), (ResolvedInKind::NextRelease, Some("1.3.9")));
    // Old deployments keep sending: not regressions, and no alert.
    for (at, release) in [(2, "1.3.9"), (3, "1.3.8"), (4, ""), (5, "1.3.9-rc.1")] {
        assert_eq!(event_from(&store, p, at, release).await.1, IssueStatus::Resolved, "{release:?}");
    }
    assert_eq!(regression_alerts(&store, p).await, 0);
    // The first event of a later release reopens it, once.
    assert_eq!(event_from(&store, p, 6, "1.3.10").await, (id, IssueStatus::Unresolved, true));
    assert_eq!(regression_alerts(&store, p).await, 1);
    event_from(&store, p, 7, "1.3.10").await;
    assert_eq!(regression_alerts(&store, p).await, 1);
    let issue = store.issue_detail(ADMIN, id).await.unwrap().unwrap().issue;
    assert!(issue.resolved_in.is_none());

    // A project without releases: any event with a release is a later one,
    // and events without one never regress it.
    let bare = project(&store, "acme", "bare").await;
    let (id, _, _) = event_from(&store, bare, 0, "").await;
    let issue = store.resolve_issue(ADMIN, id, &Resolution::NextRelease).await.unwrap().unwrap();
    assert_eq!(issue.resolved_in.unwrap().release, None);
    assert_eq!(event_from(&store, bare, 1, "").await.1, IssueStatus::Resolved);
    assert_eq!(event_from(&store, bare, 2, "0.0.1").await.1, IssueStatus::Unresolved);
}

async fn resolved_in_a_named_release_regresses_from_it_on_even_before_it_is_seen(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    store.create_alert_rule(p, &alert_rule(Trigger::Regression, 1), T0).await.unwrap();
    let (id, _, _) = event_from(&store, p, 0, "1.3.9").await;
    let issue = store.resolve_issue(ADMIN, id, &Resolution::InRelease("1.4.0".into())).await.unwrap().unwrap();
    let resolved_in = issue.resolved_in.unwrap();
    assert_eq!((resolved_in.kind, resolved_in.release.as_deref()), (ResolvedInKind::Release, Some("1.4.0")));
    assert!(resolved_in.semver);
    for (at, release) in [(1, "1.3.9"), (2, "1.4.0-rc.1"), (3, "1.3.10"), (4, "")] {
        assert_eq!(event_from(&store, p, at, release).await.1, IssueStatus::Resolved, "{release:?}");
    }
    assert_eq!(regression_alerts(&store, p).await, 0);
    assert_eq!(event_from(&store, p, 5, "1.4.0").await, (id, IssueStatus::Unresolved, true));
    assert_eq!(regression_alerts(&store, p).await, 1);

    // A later release regresses too, also for `package@version`, and in a
    // batch with events that do not.
    let q = project(&store, "acme", "pkg").await;
    let (id, _, _) = event_from(&store, q, 0, "shop@1.0.0").await;
    store.resolve_issue(ADMIN, id, &Resolution::InRelease("shop@1.2.0".into())).await.unwrap().unwrap();
    let batch = [
        new_event(q, T0 + 1, &body("pay", json!({"release": "shop@1.1.5"}))),
        new_event(q, T0 + 2, &body("pay", json!({"release": "shop@2.0.0"}))),
    ];
    store.store_events(&batch).await.unwrap();
    let issue = store.issue_detail(ADMIN, id).await.unwrap().unwrap().issue;
    assert_eq!((issue.status, issue.is_regression, issue.count), (IssueStatus::Unresolved, true, 3));
}

async fn resolved_in_the_current_release_regresses_from_the_projects_latest_on(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    // 1.10.0 is seen before 1.9.0 (a backport), yet it is the latest version.
    let (id, _, _) = event_from(&store, p, 0, "1.10.0").await;
    event_from(&store, p, 1, "1.9.0").await;
    // Another issue's release counts: the current release is the project's.
    store.store_events(&[new_event(p, T0 + 2, &body("other", json!({"release": "1.10.1"})))]).await.unwrap();
    let issue = store.resolve_issue(ADMIN, id, &Resolution::CurrentRelease).await.unwrap().unwrap();
    let resolved_in = issue.resolved_in.unwrap();
    assert_eq!((resolved_in.kind, resolved_in.release.as_deref()), (ResolvedInKind::CurrentRelease, Some("1.10.1")));
    assert_eq!(event_from(&store, p, 3, "1.9.0").await.1, IssueStatus::Resolved);
    assert_eq!(event_from(&store, p, 4, "1.10.0").await.1, IssueStatus::Resolved);
    assert_eq!(event_from(&store, p, 5, "1.10.1").await, (id, IssueStatus::Unresolved, true));

    let bare = project(&store, "acme", "bare").await;
    let (id, _, _) = event_from(&store, bare, 0, "").await;
    let refused = store.resolve_issue(ADMIN, id, &Resolution::CurrentRelease).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    assert_eq!(store.issue_detail(ADMIN, id).await.unwrap().unwrap().issue.status, IssueStatus::Unresolved);
}

async fn releases_that_are_not_versions_are_ordered_by_when_they_were_first_seen(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    // Commit hashes: "ffff…" sorts after "0000…" as text, but came first.
    let (id, _, _) = event_from(&store, p, 0, "ffff111").await;
    event_from(&store, p, 10, "0000222").await;
    event_from(&store, p, 20, "1.0.0").await;
    let issue = store.resolve_issue(ADMIN, id, &Resolution::NextRelease).await.unwrap().unwrap();
    let resolved_in = issue.resolved_in.unwrap();
    assert_eq!((resolved_in.release.as_deref(), resolved_in.semver), (Some("1.0.0"), false));
    for (at, release) in [(30, "ffff111"), (31, "0000222"), (32, "1.0.0")] {
        assert_eq!(event_from(&store, p, at, release).await.1, IssueStatus::Resolved, "{release:?}");
    }
    // A release first seen now is newer than every release seen before.
    assert_eq!(event_from(&store, p, 40, "0.0.1").await.1, IssueStatus::Unresolved);

    // Fixed in a named release not seen yet: releases seen meanwhile are older.
    let (id, _, _) = event_from(&store, p, 50, "ffff111").await;
    store.resolve_issue(ADMIN, id, &Resolution::InRelease("deploy-42".into())).await.unwrap().unwrap();
    assert_eq!(event_from(&store, p, 60, "deploy-41").await.1, IssueStatus::Resolved);
    assert_eq!(event_from(&store, p, 70, "deploy-42").await.1, IssueStatus::Unresolved);
}

async fn a_release_resolution_lasts_until_the_status_changes(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    let (id, _, _) = event_from(&store, p, 0, "1.0.0").await;
    store.resolve_issue(ADMIN, id, &Resolution::InRelease("2.0.0".into())).await.unwrap().unwrap();
    let reopened = store.set_issue_status(ADMIN, id, IssueStatus::Unresolved).await.unwrap().unwrap();
    assert!(reopened.resolved_in.is_none());
    // Resolved now: the next event regresses it whatever its release.
    let issue = store.resolve_issue(ADMIN, id, &Resolution::Now).await.unwrap().unwrap();
    assert_eq!((issue.status, issue.resolved_in), (IssueStatus::Resolved, None));
    assert_eq!(event_from(&store, p, 1, "1.0.0").await, (id, IssueStatus::Unresolved, true));
    // Resolving again in a release clears the regression mark.
    let issue = store.resolve_issue(ADMIN, id, &Resolution::NextRelease).await.unwrap().unwrap();
    assert!(!issue.is_regression);
    // An issue the viewer cannot see is not found.
    let stranger = booboo_server::store::Viewer { user_id: 999, is_admin: false };
    assert!(store.resolve_issue(stranger, id, &Resolution::NextRelease).await.unwrap().is_none());
}
