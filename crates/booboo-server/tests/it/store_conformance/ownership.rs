//! Ownership and history, backend by backend: assignees, comments, the
//! activity every change writes, and pending invitations.

use crate::support::*;
use booboo_server::store::{
    ActivityKind, AlertKind, Assignment, AttemptResult, ChannelKind, IgnoreCondition, Invitation, IssueFilter,
    IssueStatus, NewAlertRule, NewChannel, Page, Role, RuleFilters, Store, StoreError, StoreOutcome, Trigger,
};
use serde_json::json;
use std::sync::Arc;

store_tests!(
    an_issue_is_assigned_to_members_of_its_organisation_only,
    every_change_to_an_issue_is_in_its_activity_newest_first,
    ended_ignores_sent_alerts_and_merges_are_in_the_activity,
    pending_invitations_are_listed_for_admins_and_revoked,
);

const ALL: Page = Page { offset: 0, limit: 50 };

async fn project(store: &Arc<dyn Store>, org: &str, slug: &str) -> i64 {
    let token = format!("{:032x}", rand_u128());
    store.create_project(org, slug, &token, T0).await.unwrap().0.id
}

async fn one_issue(store: &Arc<dyn Store>, p: i64, at: i64) -> i64 {
    let StoreOutcome::Stored { issue_id } =
        store.store_events(&[new_event(p, at, &body("pay", json!({})))]).await.unwrap()[0]
    else {
        panic!("not stored")
    };
    issue_id
}

async fn kinds(store: &Arc<dyn Store>, issue_id: i64) -> Vec<ActivityKind> {
    store.issue_activity(ADMIN, issue_id, None, ALL).await.unwrap().unwrap().items.iter().map(|a| a.kind).collect()
}

async fn an_issue_is_assigned_to_members_of_its_organisation_only(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    project(&store, "other", "web").await;
    let ann = store.create_user("ann@example.com", "h", false, T0).await.unwrap();
    let bob = store.create_user("bob@example.com", "h", false, T0).await.unwrap();
    store.set_membership("acme", ann.id, Role::Member).await.unwrap();
    store.set_membership("other", bob.id, Role::Member).await.unwrap();
    let issue_id = one_issue(&store, p, T0).await;

    let Assignment::Done(issue) =
        store.assign_issue(ann.viewer(), issue_id, Some("ann@example.com"), T0 + 1).await.unwrap()
    else {
        panic!("not assigned")
    };
    assert_eq!(issue.assignee.as_deref(), Some("ann@example.com"));
    assert_eq!(issue.environments, vec!["production"], "a full issue comes back");
    let detail = store.issue_detail(ADMIN, issue_id).await.unwrap().unwrap();
    assert_eq!(detail.issue.assignee.as_deref(), Some("ann@example.com"));
    let listed = store.list_issues(ADMIN, p, &IssueFilter::default(), ALL).await.unwrap().items;
    assert_eq!(listed[0].assignee.as_deref(), Some("ann@example.com"));
    // The status change returns the assignee too.
    let resolved = store.set_issue_status(ann.viewer(), issue_id, IssueStatus::Resolved).await.unwrap().unwrap();
    assert_eq!(resolved.assignee.as_deref(), Some("ann@example.com"));

    // Bob exists but is a member elsewhere; nobody has the other address.
    for email in ["bob@example.com", "nobody@example.com"] {
        let outcome = store.assign_issue(ADMIN, issue_id, Some(email), T0 + 2).await.unwrap();
        assert!(matches!(outcome, Assignment::NotAMember), "{email}: {outcome:?}");
    }
    // Bob cannot see the issue at all.
    let outcome = store.assign_issue(bob.viewer(), issue_id, None, T0 + 2).await.unwrap();
    assert!(matches!(outcome, Assignment::IssueNotFound));
    assert!(matches!(store.assign_issue(ADMIN, 999_999, None, T0).await.unwrap(), Assignment::IssueNotFound));

    // Assigning to whom it is already assigned records nothing.
    store.assign_issue(ann.viewer(), issue_id, Some("ann@example.com"), T0 + 3).await.unwrap();
    let Assignment::Done(issue) = store.assign_issue(ann.viewer(), issue_id, None, T0 + 4).await.unwrap() else {
        panic!("not unassigned")
    };
    assert_eq!(issue.assignee, None);
    let entries = store.issue_activity(ADMIN, issue_id, Some(ActivityKind::Assignment), ALL).await.unwrap().unwrap();
    let details: Vec<_> = entries.items.iter().map(|a| (a.actor.as_deref(), a.detail.clone(), a.created_at)).collect();
    assert_eq!(
        details,
        vec![
            (Some("ann@example.com"), json!({"assignee": null}), T0 + 4),
            (Some("ann@example.com"), json!({"assignee": "ann@example.com"}), T0 + 1),
        ]
    );
    // A member who leaves the organisation keeps nothing assigned to them
    // only in name: the issue still names them until reassigned.
    assert!(store.remove_membership("acme", ann.id).await.unwrap());
    let outcome = store.assign_issue(ADMIN, issue_id, Some("ann@example.com"), T0 + 5).await.unwrap();
    assert!(matches!(outcome, Assignment::NotAMember));
}

async fn every_change_to_an_issue_is_in_its_activity_newest_first(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    let ann = store.create_user("ann@example.com", "h", false, T0).await.unwrap();
    let eve = store.create_user("eve@example.com", "h", false, T0).await.unwrap();
    store.set_membership("acme", ann.id, Role::Admin).await.unwrap();
    let issue_id = one_issue(&store, p, T0).await;
    assert!(kinds(&store, issue_id).await.is_empty(), "a new issue has no history yet");

    store.assign_issue(ann.viewer(), issue_id, Some("ann@example.com"), T0 + 1).await.unwrap();
    let comment =
        store.add_issue_comment(ann.viewer(), issue_id, "Looking <b>into</b> it", T0 + 2).await.unwrap().unwrap();
    assert_eq!(
        (comment.kind, comment.actor.as_deref(), comment.detail.clone()),
        (ActivityKind::Comment, Some("ann@example.com"), json!({"text": "Looking <b>into</b> it"}))
    );
    assert!(store.add_issue_comment(eve.viewer(), issue_id, "hi", T0).await.unwrap().is_none(), "not hers to see");
    // Any text a person can type is kept as typed, NUL included (PostgreSQL
    // refuses NUL in text columns; the detail is JSON, which escapes it).
    let odd = store.add_issue_comment(ann.viewer(), issue_id, "nul \u{0} here", T0 + 2).await.unwrap().unwrap();
    assert_eq!(odd.detail["text"], "nul \u{0} here");
    store.set_issue_status(ann.viewer(), issue_id, IssueStatus::Resolved).await.unwrap();
    // Resolving a resolved issue is no change.
    store.set_issue_status(ann.viewer(), issue_id, IssueStatus::Resolved).await.unwrap();
    let again = new_event(p, T0 + 10, &body("pay", json!({"release": "1.1"})));
    store.store_events(std::slice::from_ref(&again)).await.unwrap();
    // A second event of the regressed issue is no second regression.
    store.store_events(&[new_event(p, T0 + 11, &body("pay", json!({})))]).await.unwrap();
    store.ignore_issue(ann.viewer(), issue_id, IgnoreCondition::Events(100), T0 + 12).await.unwrap();

    let page = store.issue_activity(ann.viewer(), issue_id, None, ALL).await.unwrap().unwrap();
    let seen: Vec<_> = page.items.iter().map(|a| (a.kind, a.actor.as_deref())).collect();
    assert_eq!(
        seen,
        vec![
            (ActivityKind::Status, Some("ann@example.com")),
            (ActivityKind::Regression, None),
            (ActivityKind::Status, Some("ann@example.com")),
            (ActivityKind::Comment, Some("ann@example.com")),
            (ActivityKind::Comment, Some("ann@example.com")),
            (ActivityKind::Assignment, Some("ann@example.com")),
        ]
    );
    assert_eq!(page.items[0].detail, json!({"status": "ignored", "ignore": {"count": 100}}));
    assert_eq!(page.items[1].detail, json!({"event_id": again.processed.event.event_id, "release": "1.1"}));
    assert_eq!(page.items[1].created_at, T0 + 10);
    assert_eq!(page.items[2].detail, json!({"status": "resolved"}));

    // Pages, and comments alone.
    let first = store.issue_activity(ADMIN, issue_id, None, Page { offset: 0, limit: 2 }).await.unwrap().unwrap();
    assert_eq!((first.items.len(), first.next_offset), (2, Some(2)));
    let last = store.issue_activity(ADMIN, issue_id, None, Page { offset: 5, limit: 2 }).await.unwrap().unwrap();
    assert_eq!((last.items.len(), last.next_offset), (1, None));
    assert_eq!(last.items[0].kind, ActivityKind::Assignment);
    let comments = store.issue_activity(ADMIN, issue_id, Some(ActivityKind::Comment), ALL).await.unwrap().unwrap();
    assert_eq!(comments.items, vec![odd, comment]);
    // Others see nothing, as with every read.
    assert!(store.issue_activity(eve.viewer(), issue_id, None, ALL).await.unwrap().is_none());

    // The history goes with its issue.
    store.delete_issue(ADMIN, issue_id).await.unwrap();
    assert!(store.issue_activity(ADMIN, issue_id, None, ALL).await.unwrap().is_none());
}

async fn ended_ignores_sent_alerts_and_merges_are_in_the_activity(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    let rule = NewAlertRule {
        name: "new issues".into(),
        trigger: Trigger::NewIssue,
        filters: RuleFilters::default(),
        throttle_ms: 0,
        channels: vec![NewChannel {
            kind: ChannelKind::Slack,
            target: "https://hooks.slack.com/services/x".into(),
            secret: None,
        }],
    };
    store.create_alert_rule(p, &rule, T0).await.unwrap();
    let issue_id = one_issue(&store, p, T0).await;
    let due = store.claim_deliveries("n1", T0 + 1, 60_000, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    // A failed attempt is no alert sent; the successful one is.
    let retry = AttemptResult::Retry { status: Some(500), detail: "answered 500".into(), next_attempt_at: T0 + 2 };
    store.finish_delivery(due[0].id, "n1", T0 + 1, &retry).await.unwrap();
    assert!(kinds(&store, issue_id).await.is_empty());
    let due = store.claim_deliveries("n1", T0 + 2, 60_000, 10).await.unwrap();
    assert_eq!(due[0].kind, AlertKind::New);
    store.finish_delivery(due[0].id, "n1", T0 + 3, &AttemptResult::Sent { status: Some(200) }).await.unwrap();
    let sent = store.issue_activity(ADMIN, issue_id, None, ALL).await.unwrap().unwrap().items;
    assert_eq!((sent[0].kind, sent[0].actor.as_deref(), sent[0].created_at), (ActivityKind::AlertSent, None, T0 + 3));
    assert_eq!(
        sent[0].detail,
        json!({"alert": "issue.new", "channel": "slack", "recipient": null, "rule": "new issues"})
    );

    // An ignore that ends with an event, and one that ends with time.
    store.ignore_issue(ADMIN, issue_id, IgnoreCondition::Events(1), T0 + 4).await.unwrap();
    store.store_events(&[new_event(p, T0 + 5, &body("pay", json!({})))]).await.unwrap();
    store.ignore_issue(ADMIN, issue_id, IgnoreCondition::For { ms: 10 }, T0 + 6).await.unwrap();
    assert_eq!(store.end_expired_ignores(T0 + 16).await.unwrap(), 1);
    let entries = store.issue_activity(ADMIN, issue_id, Some(ActivityKind::Status), ALL).await.unwrap().unwrap().items;
    let ended: Vec<_> = entries.iter().filter(|a| a.detail["reason"] == "ignore_ended").map(|a| a.created_at).collect();
    assert_eq!(ended, vec![T0 + 16, T0 + 5]);
    assert!(entries.iter().all(|a| a.actor.is_none()), "booboo, and the test's ADMIN, who has no user row");
    assert_eq!(entries[0].detail, json!({"status": "unresolved", "reason": "ignore_ended"}));
    assert_eq!(entries[1].detail, json!({"status": "ignored", "ignore": {"until": T0 + 16}}));

    // What a merge records, through the verb it can call.
    let detail = json!({"merged": [41, 42]});
    store.record_issue_activity(issue_id, None, ActivityKind::Merge, &detail, T0 + 20).await.unwrap();
    let latest = &store.issue_activity(ADMIN, issue_id, None, ALL).await.unwrap().unwrap().items[0];
    assert_eq!((latest.kind, latest.detail.clone()), (ActivityKind::Merge, detail));
}

async fn pending_invitations_are_listed_for_admins_and_revoked(store: Arc<dyn Store>) {
    project(&store, "acme", "web").await;
    project(&store, "other", "web").await;
    let ann = store.create_user("ann@example.com", "h", false, T0).await.unwrap();
    let bob = store.create_user("bob@example.com", "h", false, T0).await.unwrap();
    store.set_membership("acme", ann.id, Role::Admin).await.unwrap();
    store.set_membership("acme", bob.id, Role::Member).await.unwrap();
    let invite = |email: &str, org: &str, expires_at: i64| Invitation {
        org_slug: org.into(),
        email: email.into(),
        role: Role::Member,
        expires_at,
    };
    store.create_invitation("t-new", &invite("new@example.com", "acme", T0 + 1000), T0 + 2).await.unwrap();
    store.create_invitation("t-old", &invite("old@example.com", "acme", T0 + 10), T0).await.unwrap();
    store.create_invitation("t-used", &invite("used@example.com", "acme", T0 + 1000), T0).await.unwrap();
    store.create_invitation("t-else", &invite("else@example.com", "other", T0 + 1000), T0).await.unwrap();
    store.accept_invitation("t-used", "h", T0 + 1).await.unwrap();

    let pending = store.pending_invitations(ann.viewer(), "acme", T0 + 10).await.unwrap().unwrap();
    let listed: Vec<_> = pending.iter().map(|i| (i.email.as_str(), i.role, i.created_at, i.expires_at)).collect();
    assert_eq!(listed, vec![("new@example.com", Role::Member, T0 + 2, T0 + 1000)], "not used, expired or elsewhere");
    assert!(matches!(store.pending_invitations(bob.viewer(), "acme", T0).await, Err(StoreError::Forbidden(_))));
    assert!(store.pending_invitations(bob.viewer(), "other", T0).await.unwrap().is_none());
    assert!(matches!(
        store.revoke_invitation(bob.viewer(), "acme", "new@example.com").await,
        Err(StoreError::Forbidden(_))
    ));

    assert!(store.revoke_invitation(ann.viewer(), "acme", "new@example.com").await.unwrap());
    assert!(store.invitation("t-new", T0 + 10).await.unwrap().is_none(), "its link no longer works");
    assert!(store.accept_invitation("t-new", "h", T0 + 11).await.is_err());
    assert!(!store.revoke_invitation(ann.viewer(), "acme", "new@example.com").await.unwrap());
    // A used invitation is history, not something to revoke.
    assert!(!store.revoke_invitation(ann.viewer(), "acme", "used@example.com").await.unwrap());
    assert!(store.pending_invitations(ADMIN, "acme", T0 + 10).await.unwrap().unwrap().is_empty());
    assert!(store.invitation("t-else", T0).await.unwrap().is_some(), "other organisations keep theirs");
}
