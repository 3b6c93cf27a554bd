//! Quotas that keep counting, per backend (run by `store_conformance`'s
//! `store_tests!`): over a rate limit or the spike guard every event is still
//! counted on its issue; only its payload is not stored.

use crate::support::*;
use booboo_server::store::quota::SPIKE_FLOOR_PER_HOUR;
use booboo_server::store::{
    IssueFilter, IssueStatus, LimitChange, NewAlertRule, NewChannel, NotStoredReason, Page, ProjectLimitsPatch,
    RateLimit, RuleFilters, Store, StoreOutcome, Trigger,
};
use serde_json::json;
use std::sync::Arc;

const HOUR: i64 = 3_600_000;

/// Sets a project's rate limit and spike guard as an administrator would.
pub async fn set_quota(store: &Arc<dyn Store>, project_id: i64, rate_limit: Option<RateLimit>, spike_guard: bool) {
    let patch = ProjectLimitsPatch {
        rate_limit: rate_limit.map_or(LimitChange::Reset, LimitChange::Set),
        spike_guard: Some(spike_guard),
        ..ProjectLimitsPatch::default()
    };
    store.set_project_limits(ADMIN, project_id, &patch).await.unwrap().expect("the project exists");
}

async fn project(store: &Arc<dyn Store>, org: &str, slug: &str) -> i64 {
    let token = format!("{:032x}", rand_u128());
    store.create_project(org, slug, &token, T0).await.unwrap().0.id
}

fn user_event(project_id: i64, at: i64, function: &str, user: usize) -> booboo_server::store::NewEvent {
    let user = format!("u{user}");
    let body = body(function, json!({"context": {"user": {"id": user}}, "tags": {"shard": format!("s{}", at % 2)}}));
    new_event(project_id, at, &body)
}

fn regression_rule() -> NewAlertRule {
    NewAlertRule {
        name: "regressions".into(),
        trigger: Trigger::Regression,
        filters: RuleFilters::default(),
        throttle_ms: 0,
        channels: vec![NewChannel {
            kind: booboo_server::store::ChannelKind::Webhook,
            target: "https://example.com/hook".into(),
            secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
        }],
    }
}

pub async fn a_rate_limited_project_keeps_exact_counts_while_storing_only_its_quota(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    let free = project(&store, "acme", "free").await;
    set_quota(&store, p, Some(RateLimit { count: 3, seconds: 3600 }), false).await;
    store.create_alert_rule(p, &regression_rule(), T0).await.unwrap();

    // Ten events in one hour, in two batches: three stored, seven counted.
    let first: Vec<_> = (0..6).map(|i| user_event(p, T0 + i, "pay", i as usize)).collect();
    let second: Vec<_> = (6..10).map(|i| user_event(p, T0 + i, "pay", i as usize)).collect();
    let mut outcomes = store.store_events(&first).await.unwrap();
    outcomes.extend(store.store_events(&second).await.unwrap());
    let stored = outcomes.iter().filter(|o| matches!(o, StoreOutcome::Stored { .. })).count();
    let rate_limited = outcomes
        .iter()
        .filter(|o| matches!(o, StoreOutcome::NotStored { reason: NotStoredReason::RateLimit, .. }))
        .count();
    assert_eq!((stored, rate_limited), (3, 7), "{outcomes:?}");
    let issue_id = outcomes[0].issue_id().unwrap();
    assert!(outcomes.iter().all(|o| o.issue_id() == Some(issue_id)));

    let issue = store.issue_detail(ADMIN, issue_id).await.unwrap().unwrap();
    assert_eq!((issue.issue.count, issue.issue.users), (10, 10));
    assert_eq!((issue.issue.stored, issue.issue.not_stored.rate_limit, issue.issue.not_stored.retention), (3, 7, 0));
    assert_eq!((issue.issue.first_seen, issue.issue.last_seen), (T0, T0 + 9));
    assert_eq!(issue.environment_counts[0].count, 10);
    assert_eq!(issue.release_counts[0].count, 10);
    let shard: i64 = issue.tags.iter().find(|t| t.key == "shard").unwrap().values.iter().map(|v| v.count).sum();
    assert_eq!(shard, 10);
    let hourly = store.issue_hourly(ADMIN, p, &[issue_id], T0 / HOUR).await.unwrap();
    assert_eq!(hourly.iter().map(|h| h.count).sum::<i64>(), 10);
    let events = store.issue_events(ADMIN, issue_id, Page { offset: 0, limit: 50 }).await.unwrap().unwrap();
    assert_eq!(events.items.len(), 3);

    // A resend of a stored event is a duplicate, even over the quota;
    // an event counted without its payload cannot be recognised again.
    assert_eq!(store.store_events(&first[..1]).await.unwrap(), vec![StoreOutcome::Duplicate]);
    assert_eq!(store.issue_detail(ADMIN, issue_id).await.unwrap().unwrap().issue.count, 10);

    // A regression over the quota still reopens the issue and fires its alert.
    store.set_issue_status(ADMIN, issue_id, IssueStatus::Resolved).await.unwrap();
    let again = store.store_events(&[user_event(p, T0 + 20, "pay", 0)]).await.unwrap();
    assert!(matches!(again[0], StoreOutcome::NotStored { .. }), "{again:?}");
    let issue = store.issue_detail(ADMIN, issue_id).await.unwrap().unwrap().issue;
    assert_eq!((issue.status, issue.is_regression, issue.count, issue.users), (IssueStatus::Unresolved, true, 11, 10));
    let deliveries = store.issue_deliveries(issue_id, 10).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].kind, "issue.regression");

    // A new issue over the quota is created, counted and listed.
    let other = store.store_events(&[user_event(p, T0 + 30, "ship", 1)]).await.unwrap();
    let StoreOutcome::NotStored { issue_id: ship, .. } = other[0] else { panic!("{other:?}") };
    let listed = store.list_issues(ADMIN, p, &IssueFilter::default(), Page { offset: 0, limit: 10 }).await.unwrap();
    let ship = listed.items.iter().find(|i| i.id == ship).unwrap();
    assert_eq!((ship.count, ship.stored, ship.not_stored.rate_limit), (1, 0, 1));

    // The next window stores again; a project without a limit never stops.
    let next = store.store_events(&[user_event(p, T0 + HOUR, "pay", 3)]).await.unwrap();
    assert!(matches!(next[0], StoreOutcome::Stored { .. }), "{next:?}");
    let unlimited: Vec<_> = (0..12).map(|i| user_event(free, T0 + i, "pay", 0)).collect();
    let outcomes = store.store_events(&unlimited).await.unwrap();
    assert!(outcomes.iter().all(|o| matches!(o, StoreOutcome::Stored { .. })));
}

pub async fn the_installation_rate_limit_counts_all_projects_together(store: Arc<dyn Store>) {
    let own = project(&store, "acme", "own").await;
    let plain = project(&store, "acme", "plain").await;
    set_quota(&store, own, Some(RateLimit { count: 1, seconds: 60 }), false).await;
    store.set_installation_rate_limit(Some(RateLimit { count: 4, seconds: 60 }));
    let batch: Vec<_> =
        (0..4).flat_map(|i| [user_event(own, T0 + i, "pay", 0), user_event(plain, T0 + i, "pay", 0)]).collect();
    let mut outcomes = store.store_events(&batch[..4]).await.unwrap();
    outcomes.extend(store.store_events(&batch[4..]).await.unwrap());
    let stored = |p: i64| {
        batch
            .iter()
            .zip(&outcomes)
            .filter(|(e, o)| e.project_id == p && matches!(o, StoreOutcome::Stored { .. }))
            .count()
    };
    // The project's own limit holds it to one; the installation's lets four
    // through in all, so the other project gets the remaining three.
    assert_eq!((stored(own), stored(plain)), (1, 3), "{outcomes:?}");
    let counted: i64 = store
        .list_issues(ADMIN, plain, &IssueFilter::default(), Page { offset: 0, limit: 10 })
        .await
        .unwrap()
        .items
        .iter()
        .map(|i| i.count)
        .sum();
    assert_eq!(counted, 4);
    // Off again: the next event is stored.
    store.set_installation_rate_limit(None);
    let later = store.store_events(&[user_event(plain, T0 + 10, "pay", 0)]).await.unwrap();
    assert!(matches!(later[0], StoreOutcome::Stored { .. }));
}

pub async fn the_spike_guard_caps_an_hour_at_its_floor_without_history(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    set_quota(&store, p, None, true).await;
    let floor = SPIKE_FLOOR_PER_HOUR as usize;
    let burst: Vec<_> = (0..floor + 5).map(|i| user_event(p, T0 + 2 * HOUR + i as i64, "pay", i % 7)).collect();
    let mut outcomes = Vec::new();
    for chunk in burst.chunks(250) {
        outcomes.extend(store.store_events(chunk).await.unwrap());
    }
    let spiked = outcomes
        .iter()
        .filter(|o| matches!(o, StoreOutcome::NotStored { reason: NotStoredReason::SpikeGuard, .. }))
        .count();
    assert_eq!(spiked, 5);
    let issue = store.issue_detail(ADMIN, outcomes[0].issue_id().unwrap()).await.unwrap().unwrap().issue;
    assert_eq!(
        (issue.count, issue.stored, issue.not_stored.rate_limit, issue.users),
        (floor as i64 + 5, floor as i64, 5, 7)
    );
}
